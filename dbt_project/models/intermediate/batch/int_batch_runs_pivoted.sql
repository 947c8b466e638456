{#- One row per batch run: its events pivoted (scheduled start, actual start and end, status, error type,
    reported duration, records, bytes).

    Incremental on event time: the runs with an event in the window are re-assembled from all their events
    (read back max_run_hours, and forward as far, so a run that spans partitions is whole); runs still
    running are re-checked every time. A field whose event lies beyond the read-back keeps its stored value.
-#}
{{
    config(
        materialized='incremental',
        unique_key='run_id',
        incremental_strategy=cms.incremental_strategy(),
        on_schema_change='append_new_columns',
    )
}}

{%- set detect = cms.event_window('last_event_ts') -%}
{%- set readback = cms.event_window('last_event_ts', back_hours=var('lookback_hours') + var('max_run_hours'), forward_hours=var('max_run_hours')) -%}

with events as (

    select * from {{ ref('stg_cms__batch_run_events') }}
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
        max(events.asset_class_id) as asset_class_id,
        max(events.job_id) as job_id,
        max(events.job_key) as job_key,
        max(events.scheduled_start_ts) as scheduled_start_ts,
        min(case when events.event_type = 'started' then events.event_ts end) as started_ts,
        max(case when events.event_type = 'finished' then events.event_ts end) as finished_ts,
        min(case when events.event_type = 'duration' then events.interval_start_ts end) as duration_start_ts,
        max(case when events.event_type = 'duration' then events.value end) as reported_duration_s,
        max(case when events.event_type = 'finished' then events.status end) as finished_status,
        max(case when events.event_type <> 'started' then events.status end) as reported_status,
        max(case when events.event_type = 'finished' then events.error_type end) as error_type,
        max(case when events.event_type = 'records' then events.value end) as records,
        max(case when events.event_type = 'bytes' then events.value end) as bytes,
        min(events.event_ts) as first_event_ts,
        max(events.event_ts) as last_event_ts,
        max(events.ingested_at) as last_ingested_at
    from events
    inner join touched on events.run_id = touched.run_id
    group by events.run_id

),

final as (

    select
        pivoted.run_id,
        pivoted.asset_class_id,
        pivoted.job_id,
        pivoted.job_key,
        {% if is_incremental() -%}
        coalesce(pivoted.scheduled_start_ts, existing.scheduled_start_ts) as scheduled_start_ts,
        least(coalesce(pivoted.started_ts, pivoted.duration_start_ts), coalesce(existing.started_ts, pivoted.started_ts, pivoted.duration_start_ts)) as started_ts,
        coalesce(pivoted.finished_ts, existing.finished_ts) as finished_ts,
        coalesce(pivoted.reported_duration_s, existing.reported_duration_s) as reported_duration_s,
        coalesce(pivoted.finished_status, pivoted.reported_status, existing.status, 'running') as status,
        coalesce(pivoted.error_type, existing.error_type) as error_type,
        coalesce(pivoted.records, existing.records) as records,
        coalesce(pivoted.bytes, existing.bytes) as bytes,
        least(pivoted.first_event_ts, coalesce(existing.first_event_ts, pivoted.first_event_ts)) as first_event_ts,
        greatest(pivoted.last_event_ts, coalesce(existing.last_event_ts, pivoted.last_event_ts)) as last_event_ts,
        greatest(pivoted.last_ingested_at, coalesce(existing.last_ingested_at, pivoted.last_ingested_at)) as last_ingested_at
        {%- else -%}
        pivoted.scheduled_start_ts,
        coalesce(pivoted.started_ts, pivoted.duration_start_ts) as started_ts,
        pivoted.finished_ts,
        pivoted.reported_duration_s,
        coalesce(pivoted.finished_status, pivoted.reported_status, 'running') as status,
        pivoted.error_type,
        pivoted.records,
        pivoted.bytes,
        pivoted.first_event_ts,
        pivoted.last_event_ts,
        pivoted.last_ingested_at
        {%- endif %}
    from pivoted
    {% if is_incremental() %}
    left join {{ this }} as existing on pivoted.run_id = existing.run_id
    {% endif %}

)

select * from final
