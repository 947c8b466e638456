select
    cast(feed_id as {{ dbt.type_string() }}) as feed_id,
    cast(provider as {{ dbt.type_string() }}) as provider,
    cast(feed_name as {{ dbt.type_string() }}) as feed_name,
    cast(staleness_sla_s as integer) as staleness_sla_s,
    cast(expected_latency_ms as double) as expected_latency_ms,
    cast(expected_messages_per_min as bigint) as expected_messages_per_min,
    cast(entity_id as {{ dbt.type_string() }}) as entity_id
from {{ ref('feeds') }}
