{#- The stage dependencies that emitters declare (cms.stage_depends_on on stage start points), one row per
    edge, with when it was first and last declared. Compared with the ontology in mart_stage_dependencies. -#}
{{
    config(
        materialized='incremental',
        unique_key=['stage_key', 'depends_on_stage_id'],
        incremental_strategy=cms.incremental_strategy(),
        on_schema_change='append_new_columns',
    )
}}

{%- set window = cms.event_window('last_declared_ts') -%}
{%- set max_items = 8 -%}

with declarations as (

    select job_key, stage_key, stage_id, declared_depends_on, event_ts
    from {{ ref('stg_cms__stage_run_events') }}
    where event_type = 'started'
        and {{ cms.in_window('event_ts', window) }}

),

edges as (

    {% for i in range(1, max_items + 1) -%}
    select
        job_key,
        stage_key,
        stage_id,
        trim({{ dbt.split_part('declared_depends_on', "','", i) }}) as depends_on_stage_id,
        event_ts
    from declarations
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

seen as (

    select
        job_key,
        stage_key,
        stage_id,
        depends_on_stage_id,
        min(event_ts) as first_declared_ts,
        max(event_ts) as last_declared_ts
    from edges
    where depends_on_stage_id is not null and depends_on_stage_id <> ''
    group by job_key, stage_key, stage_id, depends_on_stage_id

)

select
    seen.job_key,
    seen.stage_key,
    seen.stage_id,
    seen.depends_on_stage_id,
    seen.job_key || '.' || seen.depends_on_stage_id as depends_on_stage_key,
    {% if is_incremental() -%}
    least(seen.first_declared_ts, coalesce(existing.first_declared_ts, seen.first_declared_ts)) as first_declared_ts,
    greatest(seen.last_declared_ts, coalesce(existing.last_declared_ts, seen.last_declared_ts)) as last_declared_ts
    {%- else -%}
    seen.first_declared_ts,
    seen.last_declared_ts
    {%- endif %}
from seen
{% if is_incremental() %}
left join {{ this }} as existing
    on seen.stage_key = existing.stage_key and seen.depends_on_stage_id = existing.depends_on_stage_id
{% endif %}
