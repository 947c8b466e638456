{#- One row per CloudWatch series seen (entity and metric): when it was first and last seen. Incremental:
    the window's series are merged with what is stored (first seen is kept, last seen moves on). -#}
{{
    config(
        materialized='incremental',
        unique_key=['entity_id', 'metric_name'],
        incremental_strategy=cms.incremental_strategy(),
        on_schema_change='append_new_columns',
    )
}}

{%- set window = cms.event_window('last_point_ts') -%}

with seen as (

    select
        entity_id,
        metric_name,
        max(namespace) as namespace,
        max(metric) as metric,
        max(unit) as unit,
        min(minute_ts) as first_minute_ts,
        max(minute_ts) as last_minute_ts,
        max(event_ts) as last_point_ts
    from {{ ref('stg_cms__cloudwatch_metrics') }}
    where {{ cms.in_window('event_ts', window) }}
    group by entity_id, metric_name

)

select
    seen.entity_id,
    seen.metric_name,
    seen.namespace,
    seen.metric,
    seen.unit,
    {% if is_incremental() -%}
    least(seen.first_minute_ts, coalesce(existing.first_minute_ts, seen.first_minute_ts)) as first_minute_ts,
    greatest(seen.last_minute_ts, coalesce(existing.last_minute_ts, seen.last_minute_ts)) as last_minute_ts,
    greatest(seen.last_point_ts, coalesce(existing.last_point_ts, seen.last_point_ts)) as last_point_ts
    {%- else -%}
    seen.first_minute_ts,
    seen.last_minute_ts,
    seen.last_point_ts
    {%- endif %}
from seen
{% if is_incremental() %}
left join {{ this }} as existing
    on seen.entity_id = existing.entity_id and seen.metric_name = existing.metric_name
{% endif %}
