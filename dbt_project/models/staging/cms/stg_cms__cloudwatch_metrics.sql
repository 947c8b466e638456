{#- One row per CloudWatch summary point (amazonaws.com/<Namespace>/<MetricName>), including the
    configuration gauges of the pseudo-namespace CMS/AWSConfig. minute_ts is the start of the period. -#}
with points as (

    select * from {{ source('cms', 'metric_points') }}
    where metric_name like 'amazonaws.com/%'

)

select
    point_id,
    entity_id,
    metric_name,
    {{ cms.json_attr('attributes', 'Namespace') }} as namespace,
    {{ cms.json_attr('attributes', 'MetricName') }} as metric,
    unit,
    value as avg_value,
    sum as sum_value,
    count as sample_count,
    min as min_value,
    max as max_value,
    p99 as p99_value,
    ts as event_ts,
    {{ dbt.date_trunc('minute', 'coalesce(start_ts, ' ~ dbt.dateadd('second', -60, 'ts') ~ ')') }} as minute_ts,
    account_id,
    region,
    source,
    ingested_at
from points
