select
    cast(resource_id as {{ dbt.type_string() }}) as resource_id,
    cast(resource_kind as {{ dbt.type_string() }}) as resource_kind,
    cast(resource_name as {{ dbt.type_string() }}) as resource_name,
    cast(cluster as {{ dbt.type_string() }}) as cluster_name,
    cast(instance_class as {{ dbt.type_string() }}) as instance_class,
    cast(max_connections as integer) as max_connections,
    cast(memory_mb as integer) as memory_mb,
    cast(timeout_s as integer) as timeout_s,
    cast(nodes as integer) as nodes,
    cast(pods as integer) as pods
from {{ ref('resources') }}
