"""CloudWatch collectors: discovery, GetMetricData planning and batching, per-service facts, Metric Streams.

Libraries only (no Dagster): ``collector.collect`` is the one entry point that the Dagster assets
(``cms_dagster/defs/collection``), the Lambda handler and ``cms collect`` all call.
"""
