{#- Per series and hour of week (0 = Monday 00:00 UTC): the median and the median absolute deviation (MAD)
    of its values over the last baseline_days days of that slot, the basis of "longer than usual". A series
    is an entity and a metric: CloudWatch metrics per resource (minute averages), feed latency, messages
    and staleness per feed (minutes), batch run duration per job and stage duration per stage (successful
    runs, by the hour of the scheduled or actual start). The window ends at the series' latest value in the
    slot, so a slot changes only when it gets new values.

    Incremental: only the (series, slot) pairs with values in the run's window are recomputed, from the
    baseline_days before the window. -#}
{{
    config(
        materialized='incremental',
        unique_key=['series_key', 'hour_of_week'],
        incremental_strategy=cms.incremental_strategy(),
        on_schema_change='append_new_columns',
    )
}}

{%- set window = cms.event_window('latest_value_ts') -%}
{%- set bounded = window.start is not none -%}
{%- set history_start = dbt.dateadd('day', -(var('baseline_days') + 2), window.start) if bounded else none -%}
{%- set feed_measures = [('latency_ms', 'cms.feed.latency'), ('messages', 'cms.feed.messages'),
                         ('staleness_s', 'cms.feed.staleness'), ('missing_fields', 'cms.feed.missing_fields'),
                         ('invalid_values', 'cms.feed.invalid_values')] -%}

{#- the hour-of-week slots the window touches, as a literal list, so scans filter early -#}
{%- set slots = [] -%}
{%- if bounded and execute -%}
  {%- set found = run_query(
        'select distinct hour_of_week from ' ~ ref('fct_infra_metrics') ~ ' where minute_ts >= ' ~ window.start
        ~ (' and minute_ts < ' ~ window.end if window.end is not none else '')
        ~ ' union select distinct hour_of_week from ' ~ ref('fct_feed_status') ~ ' where minute_ts >= ' ~ window.start
        ~ (' and minute_ts < ' ~ window.end if window.end is not none else '')
        ~ ' union select distinct ' ~ cms.hour_of_week('scheduled_start_ts') ~ ' from ' ~ ref('fct_batch_runs')
        ~ ' where last_event_ts >= ' ~ window.start ~ ' and scheduled_start_ts is not null'
        ~ ' union select distinct ' ~ cms.hour_of_week('started_ts') ~ ' from ' ~ ref('fct_stage_runs')
        ~ ' where last_event_ts >= ' ~ window.start ~ ' and started_ts is not null') -%}
  {%- for v in found.columns[0].values() %}{% do slots.append(v | int) %}{% endfor -%}
{%- endif -%}
{%- set slot_list = (slots | join(', ')) if slots else '-1' -%}

{#- 1 when an observation is new in the window (its pair is recomputed), else 0 -#}
{%- set touched_sql = ('case when @ >= ' ~ window.start ~ ' then 1 else 0 end') if bounded else '1' -%}

with observations as (

    select entity_id, metric_name, hour_of_week, minute_ts as value_ts, avg_value as value,
        {{ touched_sql.replace('@', 'minute_ts') }} as is_touched
    from {{ ref('fct_infra_metrics') }}
    where namespace <> 'CMS/AWSConfig'
    {% if bounded %}
        and minute_ts >= {{ history_start }}
        and hour_of_week in ({{ slot_list }})
    {% endif %}

    {% for column, metric in feed_measures %}
    union all
    select 'feed:' || feed_id, '{{ metric }}', hour_of_week, minute_ts, cast({{ column }} as double),
        {{ touched_sql.replace('@', 'minute_ts') }}
    from {{ ref('fct_feed_status') }}
    where {{ column }} is not null
    {% if bounded %}
        and minute_ts >= {{ history_start }}
        and hour_of_week in ({{ slot_list }})
    {% endif %}
    {% endfor %}

    union all
    select 'job:' || job_key, 'cms.batch.run.duration', {{ cms.hour_of_week('scheduled_start_ts') }},
        scheduled_start_ts, duration_s, {{ touched_sql.replace('@', 'last_event_ts') }}
    from {{ ref('fct_batch_runs') }}
    where status = 'success' and scheduled_start_ts is not null
    {% if bounded %}
        and scheduled_start_ts >= {{ history_start }}
    {% endif %}

    union all
    select 'stage:' || stage_key, 'cms.stage.run.duration', {{ cms.hour_of_week('started_ts') }},
        started_ts, duration_s, {{ touched_sql.replace('@', 'last_event_ts') }}
    from {{ ref('fct_stage_runs') }}
    where status = 'success' and started_ts is not null
    {% if bounded %}
        and started_ts >= {{ history_start }}
    {% endif %}

),

latest as (

    select entity_id, metric_name, hour_of_week, max(value_ts) as latest_value_ts
    from observations
    group by entity_id, metric_name, hour_of_week
    having max(is_touched) = 1

),

in_baseline as (

    select observations.*, latest.latest_value_ts
    from observations
    inner join latest
        on observations.entity_id = latest.entity_id
        and observations.metric_name = latest.metric_name
        and observations.hour_of_week = latest.hour_of_week
    where observations.value_ts > {{ dbt.dateadd('day', -var('baseline_days'), 'latest.latest_value_ts') }}

),

medians as (

    select
        entity_id,
        metric_name,
        hour_of_week,
        count(*) as samples,
        {{ cms.median('value') }} as median_value,
        min(value_ts) as first_value_ts,
        max(latest_value_ts) as latest_value_ts
    from in_baseline
    group by entity_id, metric_name, hour_of_week

),

deviations as (

    select
        in_baseline.entity_id,
        in_baseline.metric_name,
        in_baseline.hour_of_week,
        {{ cms.median('abs(in_baseline.value - medians.median_value)') }} as mad_value
    from in_baseline
    inner join medians
        on in_baseline.entity_id = medians.entity_id
        and in_baseline.metric_name = medians.metric_name
        and in_baseline.hour_of_week = medians.hour_of_week
    group by in_baseline.entity_id, in_baseline.metric_name, in_baseline.hour_of_week

)

select
    {{ cms.surrogate_key(['medians.entity_id', 'medians.metric_name']) }} as series_key,
    medians.entity_id,
    medians.metric_name,
    cast(medians.hour_of_week as integer) as hour_of_week,
    cast(floor(medians.hour_of_week / 24) + 1 as integer) as iso_day_of_week,
    cast(mod(medians.hour_of_week, 24) as integer) as hour_of_day,
    medians.samples,
    medians.median_value,
    deviations.mad_value,
    1.4826 * deviations.mad_value as robust_sigma,
    medians.first_value_ts,
    medians.latest_value_ts
from medians
inner join deviations
    on medians.entity_id = deviations.entity_id
    and medians.metric_name = deviations.metric_name
    and medians.hour_of_week = deviations.hour_of_week
