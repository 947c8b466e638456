{#- One row per stage attempt: start, end, duration, status, attempt, retries, records, error type, and
    whether this is the stage's final attempt in its run. declared_depends_on is what the emitter said the
    stage waits for; depends_on_matches_ontology compares it, as a set, with the ontology. -#}
{{
    config(
        materialized='incremental',
        unique_key='stage_attempt_key',
        incremental_strategy=cms.incremental_strategy(),
        on_schema_change='append_new_columns',
    )
}}

{%- set window = cms.event_window('last_event_ts') -%}

with touched_runs as (

    select distinct run_id from {{ ref('int_stage_attempts_pivoted') }}
    where {{ cms.in_window('last_event_ts', {'start': window.start, 'end': none}) }}
    {% if is_incremental() %}
    union
    select run_id from {{ this }} where status = 'running'
    {% endif %}

),

attempts as (

    select attempts.*
    from {{ ref('int_stage_attempts_pivoted') }} as attempts
    inner join touched_runs on attempts.run_id = touched_runs.run_id

),

stages as (

    select * from {{ ref('stg_ontology__stages') }}

),

measured as (

    select
        attempts.*,
        coalesce(
            attempts.reported_duration_s,
            {{ cms.seconds_between('attempts.started_ts', 'attempts.finished_ts') }}
        ) as duration_s,
        max(attempts.attempt) over (partition by attempts.run_id, attempts.stage_id) as last_attempt,
        stages.depends_on as ontology_depends_on,
        stages.stage_key as ontology_stage_key
    from attempts
    left join stages on attempts.stage_key = stages.stage_key

)

select
    stage_attempt_key,
    run_id,
    job_key,
    stage_key,
    asset_class_id,
    job_id,
    stage_id,
    stage_type,
    attempt,
    retries,
    attempt = last_attempt as is_final_attempt,
    started_ts,
    finished_ts,
    cast(started_ts as date) as run_date,
    duration_s,
    status,
    error_type,
    cast(records as bigint) as records,
    declared_depends_on,
    case
        when ontology_stage_key is null then false
        else {{ cms.csv_sets_equal('declared_depends_on', 'ontology_depends_on') }}
    end as depends_on_matches_ontology,
    first_event_ts,
    last_event_ts
from measured
