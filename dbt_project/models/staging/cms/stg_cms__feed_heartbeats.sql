{#- One row per cms.feed.* point. A heartbeat every 60 s reports the minute before it: minute_ts is the
    start of that minute (the point's start time when sent, else its time less 60 s, to the minute). -#}
with points as (

    select * from {{ source('cms', 'metric_points') }}
    where metric_name in (
        'cms.feed.up',
        'cms.feed.latency',
        'cms.feed.staleness',
        'cms.feed.messages',
        'cms.feed.missing_fields',
        'cms.feed.invalid_values'
    )

)

select
    point_id,
    feed as feed_id,
    {{ cms.json_attr('attributes', 'cms.provider') }} as provider,
    substr(metric_name, {{ ('cms.feed.' | length) + 1 }}) as measure,
    value,
    ts as event_ts,
    {{ dbt.date_trunc('minute', 'coalesce(start_ts, ' ~ dbt.dateadd('second', -60, 'ts') ~ ')') }} as minute_ts,
    service_name,
    environment,
    source,
    ingested_at
from points
