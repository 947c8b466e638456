"""OTLP/HTTP receiver for the business-metrics SDKs: durable, batched writes into the raw zone."""
