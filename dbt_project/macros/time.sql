{#- Time helpers that differ between DuckDB and Snowflake. Timestamps are naive UTC on both
    (DuckDB TIMESTAMP, Snowflake TIMESTAMP_NTZ). -#}

{#- A timestamp literal from an ISO-8601 string ('2026-11-20T14:00:00Z', '2026-11-20 14:00'). -#}
{% macro ts_literal(value) -%}
  {%- set v = (value | string).replace('T', ' ').replace('Z', '').replace('+00:00', '') -%}
  cast('{{ v }}' as timestamp)
{%- endmacro %}

{#- Parse an ISO-8601 UTC string column (e.g. cms.scheduled_start) to a timestamp, to the second. -#}
{% macro parse_iso_ts(expr) -%}
  cast(replace(substr({{ expr }}, 1, 19), 'T', ' ') as timestamp)
{%- endmacro %}

{#- Seconds from `start` to `end` as a double, keeping microseconds. -#}
{% macro seconds_between(start, end) -%}
  {{ return(adapter.dispatch('seconds_between', 'cms')(start, end)) }}
{%- endmacro %}

{% macro default__seconds_between(start, end) -%}
  (date_diff('microsecond', {{ start }}, {{ end }}) / 1000000.0)
{%- endmacro %}

{% macro snowflake__seconds_between(start, end) -%}
  (datediff('microsecond', {{ start }}, {{ end }}) / 1000000.0)
{%- endmacro %}

{#- Add (possibly fractional) seconds to a timestamp. -#}
{% macro add_seconds(expr, seconds) -%}
  {{ dbt.dateadd('microsecond', 'cast(round((' ~ seconds ~ ') * 1000000) as bigint)', expr) }}
{%- endmacro %}

{#- Hour of the ISO week: 0 = Monday 00:00-01:00 UTC ... 167 = Sunday 23:00. Computed from a known Monday,
    so it needs no dayofweek function (fakesnow lacks dayofweekiso). -#}
{% macro hour_of_week(ts) -%}
  (mod({{ dbt.datediff("cast('2000-01-03' as date)", 'cast(' ~ ts ~ ' as date)', 'day') }}, 7) * 24 + extract(hour from {{ ts }}))
{%- endmacro %}

{#- ISO day of week: 1 = Monday ... 7 = Sunday. -#}
{% macro iso_day_of_week(date_expr) -%}
  (mod({{ dbt.datediff("cast('2000-01-03' as date)", 'cast(' ~ date_expr ~ ' as date)', 'day') }}, 7) + 1)
{%- endmacro %}
