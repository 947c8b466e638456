{#- Per job run and stage: where the run's time went. A stage's elapsed time runs from its first attempt's
    start to its final attempt's end (retries included). The critical path is walked back from the stage
    that finished last, each time to the upstream stage (ontology edges) that finished last, i.e. the one
    the stage actually waited for. Each stage's share of the run and of the critical path, and whether it
    was slower than its baseline (median elapsed of the same stage's successful runs over the previous
    baseline_days days, times slow_factor). Incremental: the runs touched by the window are recomputed. -#}
{{
    config(
        materialized='incremental',
        unique_key=['run_id', 'stage_id'],
        incremental_strategy=cms.incremental_strategy(),
        on_schema_change='append_new_columns',
    )
}}

{%- set window = cms.event_window('last_event_ts') -%}
{%- set bounded = window.start is not none -%}

with recursive

attempts as (

    select * from {{ ref('fct_stage_runs') }}

),

touched_attempts as (

    select run_id, run_date
    from attempts
    {% if bounded %}
    where run_id in (
        select run_id from attempts where last_event_ts >= {{ window.start }} or status = 'running'
    )
    {% endif %}

),

touched_runs as (

    select distinct run_id from touched_attempts

),

stage_elapsed as (

    {#- one row per run and stage, over the touched runs and the baseline history before them -#}
    select
        attempts.run_id,
        attempts.stage_id,
        max(attempts.stage_key) as stage_key,
        max(attempts.job_key) as job_key,
        max(attempts.asset_class_id) as asset_class_id,
        count(*) as attempts,
        min(attempts.started_ts) as stage_started_ts,
        max(attempts.finished_ts) as stage_finished_ts,
        max(case when attempts.is_final_attempt then attempts.status end) as final_status,
        max(case when attempts.is_final_attempt then attempts.duration_s end) as final_attempt_duration_s,
        max(attempts.last_event_ts) as last_event_ts
    from attempts
    {% if bounded %}
    where attempts.run_date >= {{ dbt.dateadd('day', -(var('baseline_days') + 1), '(select min(run_date) from touched_attempts)') }}
    {% endif %}
    group by attempts.run_id, attempts.stage_id

),

run_stages as (

    select
        stage_elapsed.*,
        {{ cms.seconds_between('stage_elapsed.stage_started_ts', 'stage_elapsed.stage_finished_ts') }} as elapsed_s
    from stage_elapsed
    inner join touched_runs on stage_elapsed.run_id = touched_runs.run_id

),

edges as (

    select * from {{ ref('stg_ontology__stage_dependencies') }}

),

upstream_ranked as (

    select
        run_stages.run_id,
        run_stages.stage_id,
        upstream.stage_id as upstream_stage_id,
        upstream.stage_finished_ts as upstream_finished_ts,
        row_number() over (
            partition by run_stages.run_id, run_stages.stage_id
            order by upstream.stage_finished_ts desc, upstream.stage_id
        ) as rn
    from run_stages
    inner join edges on edges.stage_key = run_stages.stage_key
    inner join run_stages as upstream
        on upstream.run_id = run_stages.run_id and upstream.stage_id = edges.depends_on_stage_id

),

gating as (

    select run_id, stage_id, upstream_stage_id, upstream_finished_ts
    from upstream_ranked
    where rn = 1

),

last_stage as (

    select run_id, stage_id
    from (
        select
            run_id,
            stage_id,
            row_number() over (partition by run_id order by stage_finished_ts desc, stage_id) as rn
        from run_stages
        where stage_finished_ts is not null
    ) as ranked
    where rn = 1

),

critical_path (run_id, stage_id, steps_from_end) as (

    select run_id, stage_id, 0 from last_stage
    union all
    select gating.run_id, gating.upstream_stage_id, critical_path.steps_from_end + 1
    from critical_path
    inner join gating
        on gating.run_id = critical_path.run_id and gating.stage_id = critical_path.stage_id

),

path_totals as (

    select
        critical_path.run_id,
        max(critical_path.steps_from_end) as last_step,
        sum(run_stages.elapsed_s) as critical_path_s
    from critical_path
    inner join run_stages
        on run_stages.run_id = critical_path.run_id and run_stages.stage_id = critical_path.stage_id
    group by critical_path.run_id

),

path_strings as (

    select
        critical_path.run_id,
        {{ dbt.listagg('critical_path.stage_id', "' > '", 'order by critical_path.steps_from_end desc') }} as critical_path
    from critical_path
    group by critical_path.run_id

),

baselines as (

    select
        run_stages.run_id,
        run_stages.stage_id,
        count(history.run_id) as baseline_samples,
        {{ cms.median('history.elapsed_s') }} as baseline_elapsed_s
    from run_stages
    inner join (
        select
            stage_elapsed.*,
            {{ cms.seconds_between('stage_elapsed.stage_started_ts', 'stage_elapsed.stage_finished_ts') }} as elapsed_s
        from stage_elapsed
        where final_status = 'success'
    ) as history
        on history.stage_key = run_stages.stage_key
        and history.stage_started_ts < run_stages.stage_started_ts
        and history.stage_started_ts >= {{ dbt.dateadd('day', -var('baseline_days'), 'run_stages.stage_started_ts') }}
    group by run_stages.run_id, run_stages.stage_id

),

runs as (

    select run_id, run_date, actual_start_ts, actual_end_ts, duration_s as run_duration_s, status as run_status
    from {{ ref('fct_batch_runs') }}
    where run_id in (select run_id from touched_runs)

)

select
    {{ cms.surrogate_key(['run_stages.run_id', 'run_stages.stage_id']) }} as stage_bottleneck_key,
    run_stages.run_id,
    run_stages.stage_id,
    run_stages.stage_key,
    run_stages.job_key,
    run_stages.asset_class_id,
    coalesce(runs.run_date, cast(run_stages.stage_started_ts as date)) as run_date,
    runs.run_status,
    runs.run_duration_s,
    path_strings.critical_path,
    run_stages.attempts,
    run_stages.final_status,
    run_stages.stage_started_ts,
    run_stages.stage_finished_ts,
    run_stages.elapsed_s,
    run_stages.final_attempt_duration_s,
    gating.upstream_stage_id as waited_for_stage_id,
    {{ cms.seconds_between('gating.upstream_finished_ts', 'run_stages.stage_started_ts') }} as wait_after_upstream_s,
    critical_path.run_id is not null as is_on_critical_path,
    path_totals.last_step - critical_path.steps_from_end + 1 as critical_path_position,
    {{ cms.pct('run_stages.elapsed_s', 'runs.run_duration_s') }} as share_of_run_pct,
    case
        when critical_path.run_id is not null then {{ cms.pct('run_stages.elapsed_s', 'path_totals.critical_path_s') }}
    end as share_of_critical_path_pct,
    baselines.baseline_samples,
    baselines.baseline_elapsed_s,
    {{ cms.safe_divide('run_stages.elapsed_s', 'baselines.baseline_elapsed_s') }} as elapsed_vs_baseline,
    coalesce(run_stages.elapsed_s > baselines.baseline_elapsed_s * {{ var('slow_factor') }}, false) as is_slower_than_baseline,
    run_stages.last_event_ts
from run_stages
left join gating
    on gating.run_id = run_stages.run_id and gating.stage_id = run_stages.stage_id
left join critical_path
    on critical_path.run_id = run_stages.run_id and critical_path.stage_id = run_stages.stage_id
left join path_totals on path_totals.run_id = run_stages.run_id
left join path_strings on path_strings.run_id = run_stages.run_id
left join baselines
    on baselines.run_id = run_stages.run_id and baselines.stage_id = run_stages.stage_id
left join runs on runs.run_id = run_stages.run_id
