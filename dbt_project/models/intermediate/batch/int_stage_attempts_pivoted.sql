{#- One row per stage attempt (run_id, stage, attempt): its events pivoted. Incremental like
    int_batch_runs_pivoted: every attempt of a run touched by the window is re-assembled. -#}
{{
    config(
        materialized='incremental',
        unique_key='stage_attempt_key',
        incremental_strategy=cms.incremental_strategy(),
        on_schema_change='append_new_columns',
    )
}}

{%- set detect = cms.event_window('last_event_ts') -%}
{%- set readback = cms.event_window('last_event_ts', back_hours=var('lookback_hours') + var('max_run_hours'), forward_hours=var('max_run_hours')) -%}

with events as (

    select * from {{ ref('stg_cms__stage_run_events') }}
    where {{ cms.in_window('event_ts', readback) }}

),

touched as (

    select distinct run_id from events
    where {{ cms.in_window('event_ts', detect) }}
    {% if is_incremental() %}
    union
    select run_id from {{ this }} where status = 'running'
    {% endif %}

),

pivoted as (

    select
        events.run_id,
        events.stage_id,
        events.attempt,
        max(events.asset_class_id) as asset_class_id,
        max(events.job_id) as job_id,
        max(events.job_key) as job_key,
        max(events.stage_key) as stage_key,
        max(events.stage_type) as stage_type,
        max(events.retries) as retries,
        max(events.declared_depends_on) as declared_depends_on,
        min(case when events.event_type = 'started' then events.event_ts end) as started_ts,
        max(case when events.event_type = 'finished' then events.event_ts end) as finished_ts,
        min(case when events.event_type = 'duration' then events.interval_start_ts end) as duration_start_ts,
        max(case when events.event_type = 'duration' then events.value end) as reported_duration_s,
        max(case when events.event_type = 'finished' then events.status end) as finished_status,
        max(case when events.event_type <> 'started' then events.status end) as reported_status,
        max(case when events.event_type = 'finished' then events.error_type end) as error_type,
        max(case when events.event_type = 'records' then events.value end) as records,
        min(events.event_ts) as first_event_ts,
        max(events.event_ts) as last_event_ts
    from events
    inner join touched on events.run_id = touched.run_id
    group by events.run_id, events.stage_id, events.attempt

)

select
    {{ cms.surrogate_key(['pivoted.run_id', 'pivoted.stage_id', 'pivoted.attempt']) }} as stage_attempt_key,
    pivoted.run_id,
    pivoted.stage_id,
    pivoted.attempt,
    pivoted.asset_class_id,
    pivoted.job_id,
    pivoted.job_key,
    pivoted.stage_key,
    pivoted.stage_type,
    coalesce(pivoted.retries, pivoted.attempt - 1) as retries,
    pivoted.declared_depends_on,
    {% if is_incremental() -%}
    least(coalesce(pivoted.started_ts, pivoted.duration_start_ts), coalesce(existing.started_ts, pivoted.started_ts, pivoted.duration_start_ts)) as started_ts,
    coalesce(pivoted.finished_ts, existing.finished_ts) as finished_ts,
    coalesce(pivoted.reported_duration_s, existing.reported_duration_s) as reported_duration_s,
    coalesce(pivoted.finished_status, pivoted.reported_status, existing.status, 'running') as status,
    coalesce(pivoted.error_type, existing.error_type) as error_type,
    coalesce(pivoted.records, existing.records) as records,
    least(pivoted.first_event_ts, coalesce(existing.first_event_ts, pivoted.first_event_ts)) as first_event_ts,
    greatest(pivoted.last_event_ts, coalesce(existing.last_event_ts, pivoted.last_event_ts)) as last_event_ts
    {%- else -%}
    coalesce(pivoted.started_ts, pivoted.duration_start_ts) as started_ts,
    pivoted.finished_ts,
    pivoted.reported_duration_s,
    coalesce(pivoted.finished_status, pivoted.reported_status, 'running') as status,
    pivoted.error_type,
    pivoted.records,
    pivoted.first_event_ts,
    pivoted.last_event_ts
    {%- endif %}
from pivoted
{% if is_incremental() %}
left join {{ this }} as existing
    on existing.stage_attempt_key = {{ cms.surrogate_key(['pivoted.run_id', 'pivoted.stage_id', 'pivoted.attempt']) }}
{% endif %}
