{#- A surrogate key: md5 over the columns cast to strings, nulls marked (dbt_utils' generate_surrogate_key,
    written here because dbt hub packages are not used). -#}
{% macro surrogate_key(columns) -%}
  md5(
    {%- for c in columns %}
    coalesce(cast({{ c }} as {{ dbt.type_string() }}), '_cms_null_'){% if not loop.last %} || '|' ||{% endif %}
    {%- endfor %}
  )
{%- endmacro %}
