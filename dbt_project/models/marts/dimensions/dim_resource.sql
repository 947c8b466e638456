{#- One row per infrastructure resource: those of the ontology and any other seen in CloudWatch data
    (in_ontology false), with their configuration: from the ontology and as last observed through the
    CMS/AWSConfig gauges (configured_* columns). -#}

with ontology as (

    select * from {{ ref('stg_ontology__resources') }}

),

observed as (

    select entity_id, min(first_minute_ts) as first_seen_ts, max(last_minute_ts) as last_seen_ts
    from {{ ref('int_infra_series_observed') }}
    group by entity_id

),

configs as (

    select
        entity_id,
        {% for name, column in [('MaxConnections', 'configured_max_connections'),
                                ('VisibilityTimeout', 'configured_visibility_timeout_s'),
                                ('MessageRetentionPeriod', 'configured_message_retention_s'),
                                ('RedriveMaxReceiveCount', 'configured_redrive_max_receive_count'),
                                ('MemorySize', 'configured_memory_mb'),
                                ('Timeout', 'configured_timeout_s')] -%}
        max(case when config_name = '{{ name }}' then config_value end) as {{ column }},
        {% endfor -%}
        max(observed_ts) as config_observed_ts
    from {{ ref('int_resource_configs_latest') }}
    group by entity_id

),

resource_ids as (

    select resource_id from ontology
    union
    select entity_id from observed
    union
    select entity_id from configs

)

select
    ids.resource_id,
    coalesce(
        ontology.resource_kind,
        case
            when ids.resource_id like 'eks:%/%' then 'eks_namespace'
            when ids.resource_id like 'eks:%' then 'eks_cluster'
            else {{ dbt.split_part('ids.resource_id', "':'", 1) }}
        end
    ) as resource_kind,
    coalesce(ontology.resource_name, {{ dbt.split_part('ids.resource_id', "':'", 2) }}) as resource_name,
    ontology.cluster_name,
    ontology.instance_class,
    ontology.max_connections,
    ontology.memory_mb,
    ontology.timeout_s,
    ontology.nodes,
    ontology.pods,
    ontology.resource_id is not null as in_ontology,
    observed.first_seen_ts,
    observed.last_seen_ts,
    configs.configured_max_connections,
    configs.configured_visibility_timeout_s,
    configs.configured_message_retention_s,
    configs.configured_redrive_max_receive_count,
    configs.configured_memory_mb,
    configs.configured_timeout_s,
    configs.config_observed_ts
from resource_ids as ids
left join ontology on ids.resource_id = ontology.resource_id
left join observed on ids.resource_id = observed.entity_id
left join configs on ids.resource_id = configs.entity_id
