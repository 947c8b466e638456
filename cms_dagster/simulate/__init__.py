"""The data simulator: a realistic financial-ops estate with injected incidents and exact ground truth."""
