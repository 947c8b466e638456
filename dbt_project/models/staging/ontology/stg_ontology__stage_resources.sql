select
    cast(stage_key as {{ dbt.type_string() }}) as stage_key,
    cast(resource_id as {{ dbt.type_string() }}) as resource_id
from {{ ref('stage_resources') }}
