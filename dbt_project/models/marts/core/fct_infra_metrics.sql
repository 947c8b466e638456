{#- One row per resource, metric and minute: the CloudWatch statistics of that minute (average, minimum,
    maximum, sum, sample count, and p99 where collected), dimension sets of one entity combined.
    Includes the CMS/AWSConfig gauges (hourly). Incremental on event time: the biggest table. -#}
{{
    config(
        materialized='incremental',
        unique_key=['entity_id', 'metric_name', 'minute_ts'],
        incremental_strategy=cms.incremental_strategy(),
        on_schema_change='append_new_columns',
    )
}}

{%- set window = cms.event_window('last_point_ts') -%}

with points as (

    select * from {{ ref('stg_cms__cloudwatch_metrics') }}
    where {{ cms.in_window('event_ts', window) }}

)

select
    entity_id,
    metric_name,
    minute_ts,
    max(namespace) as namespace,
    max(metric) as metric,
    max(unit) as unit,
    cast(minute_ts as date) as metric_date,
    {{ cms.hour_of_week('minute_ts') }} as hour_of_week,
    coalesce(sum(sum_value) / nullif(sum(sample_count), 0), avg(avg_value)) as avg_value,
    min(min_value) as min_value,
    max(max_value) as max_value,
    sum(sum_value) as sum_value,
    sum(sample_count) as sample_count,
    max(p99_value) as p99_value,
    count(*) as dimension_sets,
    max(event_ts) as last_point_ts
from points
group by entity_id, metric_name, minute_ts
