-- Stages: external stages on the raw and processed buckets (through the storage integration), and an
-- internal stage for loads of local files (PUT), used by the embedded lake and by the tests.
USE ROLE SYSADMIN;

CREATE STAGE IF NOT EXISTS ${DATABASE}.RAW.RAW_ZONE_STAGE
  URL = '${RAW_URL}'
  STORAGE_INTEGRATION = CMS_S3_INTEGRATION
  FILE_FORMAT = (FORMAT_NAME = '${DATABASE}.RAW.OTLP_JSON_LINES')
  COMMENT = 'CMS raw zone (immutable OTLP/JSON lines)';

CREATE STAGE IF NOT EXISTS ${DATABASE}.RAW.PROCESSED_ZONE_STAGE
  URL = '${PROCESSED_URL}'
  STORAGE_INTEGRATION = CMS_S3_INTEGRATION
  FILE_FORMAT = (FORMAT_NAME = '${DATABASE}.RAW.PARQUET_POINTS')
  COMMENT = 'CMS processed zone (Parquet points)';

CREATE STAGE IF NOT EXISTS ${DATABASE}.RAW.POINTS_INTERNAL_STAGE
  FILE_FORMAT = (FORMAT_NAME = '${DATABASE}.RAW.PARQUET_POINTS')
  COMMENT = 'CMS: Parquet points PUT from local files (purged after each COPY)';
