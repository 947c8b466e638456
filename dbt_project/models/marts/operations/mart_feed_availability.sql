{#- Per feed, day and hour: availability (up minutes over observed minutes), the outages that touch the
    hour (when the first began, when the last ended, the longest), data quality rates (missing fields and
    invalid values per message), latency p50/p95/p99 over the minutes, and staleness. Incremental: the
    hours with a minute in the window are recomputed. -#}
{{
    config(
        materialized='incremental',
        unique_key=['feed_id', 'hour_ts'],
        incremental_strategy=cms.incremental_strategy(),
        on_schema_change='append_new_columns',
    )
}}

{%- set window = cms.event_window('last_heartbeat_ts') -%}
{%- set bounded = window.start is not none -%}

with status as (

    select * from {{ ref('fct_feed_status') }}
    {% if bounded %}
    where minute_ts >= {{ dbt.date_trunc('hour', window.start) }}
    {% if window.end is not none %}
        and minute_ts < {{ dbt.dateadd('hour', 1, dbt.date_trunc('hour', window.end)) }}
    {% endif %}
    {% endif %}

),

hours as (

    select
        feed_id,
        hour_ts,
        max(provider) as provider,
        count(*) as minutes_observed,
        sum(case when is_up then 1 else 0 end) as minutes_up,
        sum(case when is_up = false then 1 else 0 end) as minutes_down,
        sum(messages) as messages,
        sum(missing_fields) as missing_fields,
        sum(invalid_values) as invalid_values,
        {{ cms.percentile('latency_ms', 0.5) }} as latency_p50_ms,
        {{ cms.percentile('latency_ms', 0.95) }} as latency_p95_ms,
        {{ cms.percentile('latency_ms', 0.99) }} as latency_p99_ms,
        max(staleness_s) as max_staleness_s,
        avg(staleness_s) as avg_staleness_s,
        sum(case when is_stale then 1 else 0 end) as stale_minutes,
        max(last_heartbeat_ts) as last_heartbeat_ts
    from status
    group by feed_id, hour_ts

),

outages as (

    select
        hours.feed_id,
        hours.hour_ts,
        count(*) as outages,
        min(outage.outage_start_ts) as first_outage_start_ts,
        max(outage.outage_end_ts) as last_outage_end_ts,
        max(outage.duration_minutes) as longest_outage_minutes
    from hours
    inner join {{ ref('fct_feed_outages') }} as outage
        on outage.feed_id = hours.feed_id
        and outage.outage_start_ts < {{ dbt.dateadd('hour', 1, 'hours.hour_ts') }}
        and outage.outage_end_ts > hours.hour_ts
    group by hours.feed_id, hours.hour_ts

)

select
    {{ cms.surrogate_key(['hours.feed_id', 'hours.hour_ts']) }} as feed_availability_key,
    hours.feed_id,
    hours.provider,
    cast(hours.hour_ts as date) as status_date,
    extract(hour from hours.hour_ts) as hour_of_day,
    hours.hour_ts,
    hours.minutes_observed,
    hours.minutes_up,
    hours.minutes_down,
    {{ cms.pct('hours.minutes_up', 'hours.minutes_up + hours.minutes_down') }} as availability_pct,
    coalesce(outages.outages, 0) as outages,
    outages.first_outage_start_ts,
    outages.last_outage_end_ts,
    outages.longest_outage_minutes,
    hours.messages,
    hours.missing_fields,
    hours.invalid_values,
    {{ cms.safe_divide('hours.missing_fields', 'hours.messages') }} as missing_field_rate,
    {{ cms.safe_divide('hours.invalid_values', 'hours.messages') }} as invalid_value_rate,
    hours.latency_p50_ms,
    hours.latency_p95_ms,
    hours.latency_p99_ms,
    hours.max_staleness_s,
    hours.avg_staleness_s,
    hours.stale_minutes,
    hours.last_heartbeat_ts
from hours
left join outages on outages.feed_id = hours.feed_id and outages.hour_ts = hours.hour_ts
