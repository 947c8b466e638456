{#- JSON attribute access, behind adapter.dispatch: the `attributes` / `resource_attributes` columns are JSON
    strings (keys sorted, kvlists as objects, ints as numbers). `json_attr('attributes', 'cms.error_type')`
    reads one key as a string; extra arguments walk into objects: `json_attr('attributes', 'Dimensions',
    'QueueName')`. Missing keys give null. -#}
{% macro json_attr(column, key) -%}
  {{ return(adapter.dispatch('json_attr', 'cms')(column, [key] + (varargs | list))) }}
{%- endmacro %}

{% macro default__json_attr(column, path) -%}
  json_extract_string({{ column }}, '${% for k in path %}."{{ k }}"{% endfor %}')
{%- endmacro %}

{% macro snowflake__json_attr(column, path) -%}
  parse_json({{ column }}){% for k in path %}:"{{ k }}"{% endfor %}::string
{%- endmacro %}

{#- Number of items of a comma-separated list ('' and null have none). -#}
{% macro csv_count(expr) -%}
  (case when coalesce({{ expr }}, '') = '' then 0
        else length({{ expr }}) - length(replace({{ expr }}, ',', '')) + 1 end)
{%- endmacro %}

{#- Two comma-separated lists hold the same items, in any order (no array functions, so it runs the same
    on DuckDB, Snowflake and fakesnow). Lists of up to max_items distinct items. -#}
{% macro csv_sets_equal(a, b, max_items=8) -%}
  ({{ cms.csv_count(a) }} = {{ cms.csv_count(b) }}
  {%- for i in range(1, max_items + 1) %}
    {%- set item = 'coalesce(' ~ dbt.split_part('coalesce(' ~ b ~ ", '')", "','", i) ~ ", '')" %}
    and ({{ item }} = '' or ',' || coalesce({{ a }}, '') || ',' like '%,' || {{ item }} || ',%')
  {%- endfor %})
{%- endmacro %}
