-- Roles. Access roles hold privileges on one schema or warehouse (R = read, RW = read/write/create);
-- functional roles are what people and services use and are made of access roles:
--   CMS_LOADER       the loading asset and Snowpipe:    RAW read/write, transform warehouse
--   CMS_TRANSFORMER  dbt and the intelligence assets:  RAW read, STAGING, MARTS and INTELLIGENCE read/write,
--                                                      transform warehouse
--   CMS_ANALYST      people, the dashboard, cms ask:    MARTS, STAGING and INTELLIGENCE read, query warehouse
--   CMS_ADMIN        operators:                         all of the above, plus the pipe and tasks
-- Every functional role rolls up to SYSADMIN, so the account's administrators keep control.
USE ROLE USERADMIN;

CREATE ROLE IF NOT EXISTS CMS_RAW_R COMMENT = 'CMS access role: read RAW';
CREATE ROLE IF NOT EXISTS CMS_RAW_RW COMMENT = 'CMS access role: read and write RAW, use its stages and formats';
CREATE ROLE IF NOT EXISTS CMS_STAGING_R COMMENT = 'CMS access role: read STAGING';
CREATE ROLE IF NOT EXISTS CMS_STAGING_RW COMMENT = 'CMS access role: read, write and create in STAGING';
CREATE ROLE IF NOT EXISTS CMS_MARTS_R COMMENT = 'CMS access role: read MARTS';
CREATE ROLE IF NOT EXISTS CMS_MARTS_RW COMMENT = 'CMS access role: read, write and create in MARTS';
CREATE ROLE IF NOT EXISTS CMS_INTELLIGENCE_R COMMENT = 'CMS access role: read INTELLIGENCE';
CREATE ROLE IF NOT EXISTS CMS_INTELLIGENCE_RW COMMENT = 'CMS access role: read, write and create in INTELLIGENCE';
CREATE ROLE IF NOT EXISTS CMS_WH_QUERY COMMENT = 'CMS access role: use the XS query warehouse';
CREATE ROLE IF NOT EXISTS CMS_WH_TRANSFORM COMMENT = 'CMS access role: use the M transform warehouse';

CREATE ROLE IF NOT EXISTS CMS_LOADER COMMENT = 'CMS functional role: loading (Dagster loading asset, Snowpipe)';
CREATE ROLE IF NOT EXISTS CMS_TRANSFORMER COMMENT = 'CMS functional role: dbt';
CREATE ROLE IF NOT EXISTS CMS_ANALYST COMMENT = 'CMS functional role: analysts, dashboard, cms ask';
CREATE ROLE IF NOT EXISTS CMS_ADMIN COMMENT = 'CMS functional role: operators';

-- read roles are part of the read/write roles
GRANT ROLE CMS_RAW_R TO ROLE CMS_RAW_RW;
GRANT ROLE CMS_STAGING_R TO ROLE CMS_STAGING_RW;
GRANT ROLE CMS_MARTS_R TO ROLE CMS_MARTS_RW;
GRANT ROLE CMS_INTELLIGENCE_R TO ROLE CMS_INTELLIGENCE_RW;

-- functional roles from access roles
GRANT ROLE CMS_RAW_RW TO ROLE CMS_LOADER;
GRANT ROLE CMS_WH_TRANSFORM TO ROLE CMS_LOADER;

GRANT ROLE CMS_RAW_R TO ROLE CMS_TRANSFORMER;
GRANT ROLE CMS_STAGING_RW TO ROLE CMS_TRANSFORMER;
GRANT ROLE CMS_MARTS_RW TO ROLE CMS_TRANSFORMER;
GRANT ROLE CMS_INTELLIGENCE_RW TO ROLE CMS_TRANSFORMER;
GRANT ROLE CMS_WH_TRANSFORM TO ROLE CMS_TRANSFORMER;

GRANT ROLE CMS_MARTS_R TO ROLE CMS_ANALYST;
GRANT ROLE CMS_STAGING_R TO ROLE CMS_ANALYST;
GRANT ROLE CMS_INTELLIGENCE_R TO ROLE CMS_ANALYST;
GRANT ROLE CMS_WH_QUERY TO ROLE CMS_ANALYST;

GRANT ROLE CMS_LOADER TO ROLE CMS_ADMIN;
GRANT ROLE CMS_TRANSFORMER TO ROLE CMS_ADMIN;
GRANT ROLE CMS_ANALYST TO ROLE CMS_ADMIN;

GRANT ROLE CMS_ADMIN TO ROLE SYSADMIN;
