with asset_classes as (

    select * from {{ ref('stg_ontology__asset_classes') }}

),

jobs as (

    select asset_class_id, count(*) as job_count
    from {{ ref('stg_ontology__jobs') }}
    group by asset_class_id

)

select
    asset_classes.asset_class_id,
    asset_classes.asset_class_name,
    asset_classes.entity_id,
    coalesce(jobs.job_count, 0) as job_count
from asset_classes
left join jobs on asset_classes.asset_class_id = jobs.asset_class_id
