{#- One row per batch run: when it was scheduled, started and ended, how long it took, what it processed,
    its SLA deadline (scheduled start + the job's sla_minutes) and whether it breached it.

    A run breaches its SLA when it has not succeeded by its deadline: it finished late, it failed, or it is
    still running after the deadline (as of the latest batch event in the warehouse). -#}
{{
    config(
        materialized='incremental',
        unique_key='run_id',
        incremental_strategy=cms.incremental_strategy(),
        on_schema_change='append_new_columns',
    )
}}

{%- set window = cms.event_window('last_event_ts') -%}

with runs as (

    select * from {{ ref('int_batch_runs_pivoted') }}
    where {{ cms.in_window('last_event_ts', {'start': window.start, 'end': none}) }}
    {% if is_incremental() %}
        or run_id in (select run_id from {{ this }} where status = 'running')
    {% endif %}

),

jobs as (

    select * from {{ ref('stg_ontology__jobs') }}

),

as_of as (

    select max(last_event_ts) as as_of_ts from {{ ref('int_batch_runs_pivoted') }}

),

measured as (

    select
        runs.*,
        jobs.sla_minutes,
        {{ dbt.dateadd('minute', 'jobs.sla_minutes', 'runs.scheduled_start_ts') }} as sla_deadline_ts,
        coalesce(
            runs.reported_duration_s,
            {{ cms.seconds_between('runs.started_ts', 'runs.finished_ts') }}
        ) as duration_s,
        as_of.as_of_ts
    from runs
    left join jobs on runs.job_key = jobs.job_key
    cross join as_of

)

select
    {{ cms.surrogate_key(['run_id']) }} as batch_run_key,
    run_id,
    job_key,
    asset_class_id,
    job_id,
    scheduled_start_ts,
    cast(coalesce(scheduled_start_ts, started_ts) as date) as run_date,
    started_ts as actual_start_ts,
    finished_ts as actual_end_ts,
    {{ cms.seconds_between('scheduled_start_ts', 'started_ts') }} as start_delay_s,
    duration_s,
    status,
    error_type,
    cast(records as bigint) as records,
    cast(bytes as bigint) as bytes,
    case when duration_s > 0 then records / (duration_s / 60.0) end as records_per_minute,
    sla_minutes,
    sla_deadline_ts,
    case
        when sla_deadline_ts is null then status = 'failed'
        when status = 'failed' then true
        when status = 'success' then finished_ts > sla_deadline_ts
        else as_of_ts > sla_deadline_ts
    end as is_sla_breached,
    case
        when status = 'success' and sla_deadline_ts is not null then finished_ts <= sla_deadline_ts
        else false
    end as is_on_time,
    first_event_ts,
    last_event_ts,
    last_ingested_at
from measured
