select
    cast(asset_class_id as {{ dbt.type_string() }}) as asset_class_id,
    cast(asset_class_name as {{ dbt.type_string() }}) as asset_class_name,
    cast(entity_id as {{ dbt.type_string() }}) as entity_id
from {{ ref('asset_classes') }}
