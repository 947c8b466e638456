{#- Batch performance by asset class and day: success and failure rates, processing rates and duration
    trends. duration_index compares each successful run with the median of its own job's successful runs
    over the 28 days before it (1.0 = as usual, 1.3 = 30 % slower), so jobs of different lengths can be
    averaged; the _7d columns are rolling over the day and the six days before it.

    Incremental: the days from the earliest day touched by the window onwards are recomputed. -#}
{{
    config(
        materialized='incremental',
        unique_key=['run_date', 'asset_class_id'],
        incremental_strategy=cms.incremental_strategy(),
        on_schema_change='append_new_columns',
    )
}}

{%- set window = cms.event_window('last_event_ts') -%}
{%- set bounded = window.start is not none -%}

with runs as (

    select * from {{ ref('fct_batch_runs') }}

),

{% if bounded %}
recompute as (

    select min(run_date) as from_date
    from runs
    where last_event_ts >= {{ window.start }} or status = 'running'

),
{% endif %}

history as (

    select *
    from runs
    {% if bounded %}
    where run_date >= {{ dbt.dateadd('day', -35, '(select from_date from recompute)') }}
    {% endif %}

),

run_baselines as (

    {#- each successful run against its job's successful runs of the 28 days before it -#}
    select
        current_run.run_id,
        {{ cms.median('previous_run.duration_s') }} as job_baseline_duration_s
    from history as current_run
    inner join history as previous_run
        on previous_run.job_key = current_run.job_key
        and previous_run.status = 'success'
        and previous_run.scheduled_start_ts < current_run.scheduled_start_ts
        and previous_run.scheduled_start_ts >= {{ dbt.dateadd('day', -28, 'current_run.scheduled_start_ts') }}
    where current_run.status = 'success'
    group by current_run.run_id

),

scored as (

    select
        history.*,
        {{ cms.safe_divide('history.duration_s', 'run_baselines.job_baseline_duration_s') }} as duration_index
    from history
    left join run_baselines on history.run_id = run_baselines.run_id

),

days as (

    select
        run_date,
        asset_class_id,
        count(*) as runs,
        sum(case when status = 'success' then 1 else 0 end) as successful_runs,
        sum(case when status = 'failed' then 1 else 0 end) as failed_runs,
        sum(case when status = 'running' then 1 else 0 end) as running_runs,
        sum(case when is_sla_breached then 1 else 0 end) as breaches,
        sum(case when status = 'success' then records else 0 end) as records,
        sum(case when status = 'success' then bytes else 0 end) as bytes,
        sum(case when status = 'success' then duration_s else 0 end) as successful_duration_s,
        avg(case when status = 'success' then duration_s end) as avg_duration_s,
        {{ cms.percentile("case when status = 'success' then duration_s end", 0.5) }} as p50_duration_s,
        avg(duration_index) as duration_index,
        max(last_event_ts) as last_event_ts
    from scored
    group by run_date, asset_class_id

),

rolling as (

    select
        days.run_date,
        days.asset_class_id,
        sum(previous_day.runs) as runs_7d,
        sum(previous_day.failed_runs) as failed_runs_7d,
        sum(previous_day.successful_runs) as successful_runs_7d,
        avg(previous_day.duration_index) as duration_index_7d
    from days
    inner join days as previous_day
        on previous_day.asset_class_id = days.asset_class_id
        and previous_day.run_date <= days.run_date
        and previous_day.run_date > {{ dbt.dateadd('day', -7, 'days.run_date') }}
    group by days.run_date, days.asset_class_id

)

select
    {{ cms.surrogate_key(['days.run_date', 'days.asset_class_id']) }} as batch_performance_key,
    days.run_date,
    days.asset_class_id,
    days.runs,
    days.successful_runs,
    days.failed_runs,
    days.running_runs,
    days.breaches,
    {{ cms.pct('days.successful_runs', 'days.successful_runs + days.failed_runs') }} as success_rate_pct,
    {{ cms.pct('days.failed_runs', 'days.successful_runs + days.failed_runs') }} as failure_rate_pct,
    days.records,
    days.bytes,
    {{ cms.safe_divide('days.records', 'days.successful_duration_s / 60.0') }} as records_per_minute,
    {{ cms.safe_divide('days.bytes', 'days.successful_duration_s') }} as bytes_per_second,
    days.avg_duration_s,
    days.p50_duration_s,
    days.duration_index,
    rolling.runs_7d,
    {{ cms.pct('rolling.failed_runs_7d', 'rolling.failed_runs_7d + rolling.successful_runs_7d') }} as failure_rate_7d_pct,
    rolling.duration_index_7d,
    days.last_event_ts
from days
inner join rolling
    on days.run_date = rolling.run_date and days.asset_class_id = rolling.asset_class_id
{% if bounded %}
where days.run_date >= (select from_date from recompute)
{% endif %}
