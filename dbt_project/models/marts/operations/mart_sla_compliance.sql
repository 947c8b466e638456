{#- The SLA compliance report: per day (of the scheduled start, UTC), asset class and job, the runs, how
    many were on time (succeeded by the deadline), the breaches, failures, p50/p95 duration of successful
    runs, against the trailing 7- and 28-day baseline (the days before, not including the day).

    Incremental: the days from the earliest day touched by the window onwards are recomputed (a changed day
    moves the baselines of the 28 days after it). -#}
{{
    config(
        materialized='incremental',
        unique_key=['run_date', 'job_key'],
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

days as (

    select
        run_date,
        job_key,
        max(asset_class_id) as asset_class_id,
        max(job_id) as job_id,
        count(*) as runs,
        sum(case when status = 'success' then 1 else 0 end) as successful_runs,
        sum(case when status = 'failed' then 1 else 0 end) as failed_runs,
        sum(case when status = 'running' then 1 else 0 end) as running_runs,
        sum(case when is_on_time then 1 else 0 end) as on_time_runs,
        sum(case when is_sla_breached then 1 else 0 end) as breaches,
        {{ cms.percentile("case when status = 'success' then duration_s end", 0.5) }} as p50_duration_s,
        {{ cms.percentile("case when status = 'success' then duration_s end", 0.95) }} as p95_duration_s,
        avg(start_delay_s) as avg_start_delay_s,
        max(last_event_ts) as last_event_ts
    from runs
    {% if bounded %}
    where run_date >= (select from_date from recompute)
    {% endif %}
    group by run_date, job_key

),

history as (

    select job_key, run_date, status, is_on_time, is_sla_breached, duration_s
    from runs
    {% if bounded %}
    where run_date >= {{ dbt.dateadd('day', -28, '(select from_date from recompute)') }}
    {% endif %}

),

baselines as (

    select
        days.run_date,
        days.job_key,
        {% for n in [7, 28] -%}
        {%- set in_window = 'history.run_date >= ' ~ dbt.dateadd('day', -n, 'days.run_date') -%}
        sum(case when {{ in_window }} then 1 else 0 end) as baseline_{{ n }}d_runs,
        sum(case when {{ in_window }} and history.is_on_time then 1 else 0 end) as baseline_{{ n }}d_on_time_runs,
        sum(case when {{ in_window }} and history.is_sla_breached then 1 else 0 end) as baseline_{{ n }}d_breaches,
        {{ cms.percentile("case when " ~ in_window ~ " and history.status = 'success' then history.duration_s end", 0.5) }} as baseline_{{ n }}d_p50_duration_s,
        {{ cms.percentile("case when " ~ in_window ~ " and history.status = 'success' then history.duration_s end", 0.95) }} as baseline_{{ n }}d_p95_duration_s{% if not loop.last %},{% endif %}
        {% endfor %}
    from days
    left join history
        on history.job_key = days.job_key
        and history.run_date < days.run_date
        and history.run_date >= {{ dbt.dateadd('day', -28, 'days.run_date') }}
    group by days.run_date, days.job_key

)

select
    {{ cms.surrogate_key(['days.run_date', 'days.job_key']) }} as sla_compliance_key,
    days.run_date,
    days.asset_class_id,
    days.job_key,
    days.job_id,
    days.runs,
    days.successful_runs,
    days.failed_runs,
    days.running_runs,
    days.on_time_runs,
    {{ cms.pct('days.on_time_runs', 'days.runs') }} as on_time_pct,
    days.breaches,
    days.p50_duration_s,
    days.p95_duration_s,
    days.avg_start_delay_s,
    {% for n in [7, 28] -%}
    baselines.baseline_{{ n }}d_runs,
    {{ cms.pct('baselines.baseline_' ~ n ~ 'd_on_time_runs', 'baselines.baseline_' ~ n ~ 'd_runs') }} as baseline_{{ n }}d_on_time_pct,
    baselines.baseline_{{ n }}d_breaches,
    baselines.baseline_{{ n }}d_p50_duration_s,
    baselines.baseline_{{ n }}d_p95_duration_s,
    {{ cms.pct('days.on_time_runs', 'days.runs') }} - {{ cms.pct('baselines.baseline_' ~ n ~ 'd_on_time_runs', 'baselines.baseline_' ~ n ~ 'd_runs') }} as on_time_pct_vs_{{ n }}d,
    {{ cms.safe_divide('days.p95_duration_s', 'baselines.baseline_' ~ n ~ 'd_p95_duration_s') }} as p95_duration_ratio_vs_{{ n }}d,
    {% endfor -%}
    days.last_event_ts
from days
left join baselines
    on days.run_date = baselines.run_date and days.job_key = baselines.job_key
