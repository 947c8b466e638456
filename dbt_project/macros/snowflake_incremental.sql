{#- Snowflake MERGE for incremental models, as dbt-snowflake builds it but with the inserted values
    qualified (DBT_INTERNAL_SOURCE."COL": valid on Snowflake and required by fakesnow), and without the
    explicit begin ... commit when the target is a local stand-in (fakesnow answers HTTP 500 inside one).
    See ../shared/FACTS.md and docs/warehouse.md. -#}
{% macro snowflake__get_merge_sql(target, source, unique_key, dest_columns, incremental_predicates) -%}
  {%- set predicates = [] if incremental_predicates is none else [] + incremental_predicates -%}
  {%- set dest_cols = dest_columns | map(attribute='name') | list -%}
  {%- set keys = [unique_key] if unique_key is string else unique_key -%}
  {%- for key in keys -%}
    {%- do predicates.append('DBT_INTERNAL_SOURCE.' ~ key ~ ' = DBT_INTERNAL_DEST.' ~ key) -%}
  {%- endfor -%}
  {%- set dml -%}
    merge into {{ target }} as DBT_INTERNAL_DEST
    using {{ source }} as DBT_INTERNAL_SOURCE
    on {{ '(' ~ predicates | join(') and (') ~ ')' }}
    when matched then update set
    {%- for c in dest_cols %}
      {{ adapter.quote(c) }} = DBT_INTERNAL_SOURCE.{{ adapter.quote(c) }}{% if not loop.last %},{% endif %}
    {%- endfor %}
    when not matched then insert ({{ get_quoted_csv(dest_cols) }})
    values (
    {%- for c in dest_cols %}
      DBT_INTERNAL_SOURCE.{{ adapter.quote(c) }}{% if not loop.last %},{% endif %}
    {%- endfor %}
    )
  {%- endset -%}
  {%- if cms.is_local_standin() -%}
    {{ return(dml) }}
  {%- else -%}
    {{ return(snowflake_dml_explicit_transaction(dml)) }}
  {%- endif -%}
{%- endmacro %}

{#- True when the Snowflake target is a local stand-in (fakesnow on localhost). -#}
{% macro is_local_standin() -%}
  {{ return(target.type == 'snowflake' and (target.get('host') or '') in ('localhost', '127.0.0.1')) }}
{%- endmacro %}
