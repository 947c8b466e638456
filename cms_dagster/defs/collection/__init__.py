"""Collection: CloudWatch polling and Metric Streams landing (thin wrappers over cms_dagster.collectors)."""
