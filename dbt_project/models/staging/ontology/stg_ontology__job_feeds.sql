select
    cast(job_key as {{ dbt.type_string() }}) as job_key,
    cast(feed_id as {{ dbt.type_string() }}) as feed_id
from {{ ref('job_feeds') }}
