"""OpenTelemetry metrics model: OTLP/JSON encoding, point ids, conventions and flattening to Parquet points."""
