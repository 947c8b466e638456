-- Virtual warehouses: XS for interactive queries (dashboard, `cms ask`, analysts), M for loading,
-- dbt transforms and analytics. Both suspend after a minute idle and resume on the next query.
USE ROLE SYSADMIN;

CREATE WAREHOUSE IF NOT EXISTS CMS_QUERY_XS WITH
  WAREHOUSE_SIZE = 'XSMALL'
  AUTO_SUSPEND = 60
  AUTO_RESUME = TRUE
  INITIALLY_SUSPENDED = TRUE
  COMMENT = 'CMS: interactive queries (dashboard, cms ask, analysts)';

CREATE WAREHOUSE IF NOT EXISTS CMS_TRANSFORM_M WITH
  WAREHOUSE_SIZE = 'MEDIUM'
  AUTO_SUSPEND = 60
  AUTO_RESUME = TRUE
  INITIALLY_SUSPENDED = TRUE
  COMMENT = 'CMS: loading, dbt transforms and analytics';
