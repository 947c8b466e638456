{#- Custom schemas are used as given (raw, staging, marts), not prefixed with the target schema, so both
    warehouses have the same three schemas as infra/snowflake/ creates. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
  {%- if custom_schema_name is none -%}
    {{ target.schema | trim }}
  {%- else -%}
    {{ custom_schema_name | trim }}
  {%- endif -%}
{%- endmacro %}

{#- on-run-start: on DuckDB, create an empty raw.metric_points (columns of the data contract) when the
    loader has not run yet, so a fresh warehouse builds. On Snowflake infra/snowflake/ owns the table. -#}
{% macro ensure_raw_metric_points() -%}
  {%- if target.type == 'duckdb' -%}
    create schema if not exists raw;
    create table if not exists raw.metric_points (
      point_id varchar primary key, metric_name varchar, metric_kind varchar, unit varchar,
      ts timestamp, start_ts timestamp, value double, sum double, count double, min double, max double,
      p99 double, entity_id varchar, service_name varchar, environment varchar, account_id varchar,
      region varchar, asset_class varchar, job varchar, run_id varchar, stage varchar, feed varchar,
      status varchar, attributes varchar, resource_attributes varchar, source varchar, raw_key varchar,
      ingested_at timestamp, dt date, hour integer
    )
  {%- else -%}
    select 1
  {%- endif -%}
{%- endmacro %}
