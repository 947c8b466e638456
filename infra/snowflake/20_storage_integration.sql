-- Snowflake's access to the lake's buckets: one storage integration for the raw and processed zones.
-- After the first run, DESC INTEGRATION CMS_S3_INTEGRATION gives the IAM user ARN and external id to put
-- in the trust policy of ${S3_ROLE_ARN} (docs/warehouse.md).
USE ROLE ACCOUNTADMIN;

CREATE STORAGE INTEGRATION IF NOT EXISTS CMS_S3_INTEGRATION
  TYPE = EXTERNAL_STAGE
  STORAGE_PROVIDER = 'S3'
  ENABLED = TRUE
  STORAGE_AWS_ROLE_ARN = '${S3_ROLE_ARN}'
  STORAGE_ALLOWED_LOCATIONS = ('${RAW_URL}', '${PROCESSED_URL}')
  COMMENT = 'CMS: read the raw and processed zones';

GRANT USAGE ON INTEGRATION CMS_S3_INTEGRATION TO ROLE SYSADMIN;
