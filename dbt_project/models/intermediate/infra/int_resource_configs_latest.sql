{#- The latest value of each configuration gauge (amazonaws.com/CMS/AWSConfig/*) per resource: the facts
    CloudWatch does not publish (RDS max_connections, queue and function settings). Incremental: a value
    replaces the stored one only when it is newer. -#}
{{
    config(
        materialized='incremental',
        unique_key=['entity_id', 'config_name'],
        incremental_strategy=cms.incremental_strategy(),
        on_schema_change='append_new_columns',
    )
}}

{%- set window = cms.event_window('observed_ts') -%}

with configs as (

    select
        entity_id,
        metric as config_name,
        unit,
        avg_value as config_value,
        event_ts as observed_ts,
        row_number() over (partition by entity_id, metric order by event_ts desc) as rn
    from {{ ref('stg_cms__cloudwatch_metrics') }}
    where metric_name like 'amazonaws.com/CMS/AWSConfig/%'
        and {{ cms.in_window('event_ts', window) }}

),

latest as (

    select entity_id, config_name, unit, config_value, observed_ts
    from configs
    where rn = 1

)

select latest.*
from latest
{% if is_incremental() %}
left join {{ this }} as existing
    on latest.entity_id = existing.entity_id and latest.config_name = existing.config_name
where existing.observed_ts is null or latest.observed_ts >= existing.observed_ts
{% endif %}
