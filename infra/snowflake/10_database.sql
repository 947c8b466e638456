-- The database and its four schemas: RAW (loaded points), STAGING (dbt staging and intermediate models,
-- seeds), MARTS (the star schema and the SLA marts), INTELLIGENCE (what detection, incidents and alerts write).
USE ROLE SYSADMIN;

CREATE DATABASE IF NOT EXISTS ${DATABASE} COMMENT = 'CMS: Central Metric Store';

CREATE SCHEMA IF NOT EXISTS ${DATABASE}.RAW COMMENT = 'Metric points, one row per point id (loader)';

CREATE SCHEMA IF NOT EXISTS ${DATABASE}.STAGING COMMENT = 'dbt staging and intermediate models, ontology seeds';

CREATE SCHEMA IF NOT EXISTS ${DATABASE}.MARTS COMMENT = 'dbt star schema and SLA marts (analysts read here)';

CREATE SCHEMA IF NOT EXISTS ${DATABASE}.INTELLIGENCE COMMENT = 'Anomaly scores and incident reports (the intelligence assets write, analysts read)';
