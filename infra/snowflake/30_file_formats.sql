-- File formats of the lake: processed points (Parquet) and raw OTLP/JSON lines (gzip).
USE ROLE SYSADMIN;

CREATE FILE FORMAT IF NOT EXISTS ${DATABASE}.RAW.PARQUET_POINTS
  TYPE = PARQUET
  COMMENT = 'Processed points: points/dt=YYYY-MM-DD/hour=HH/<source>--<batch>.parquet';

CREATE FILE FORMAT IF NOT EXISTS ${DATABASE}.RAW.OTLP_JSON_LINES
  TYPE = JSON
  COMPRESSION = GZIP
  COMMENT = 'Raw OTLP/JSON lines: otel/metrics/source=S/dt=YYYY-MM-DD/hour=HH/<batch>.jsonl.gz';
