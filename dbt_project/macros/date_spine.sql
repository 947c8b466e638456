{#- One row per day from `start_date` to `end_date` inclusive (ISO strings), column `date_day`.
    Numbers come from a cross join of digits, so it needs no generator function and runs on both warehouses
    (up to 100,000 days). -#}
{% macro date_spine(start_date, end_date) -%}
  with digits as (
    {% for d in range(10) %}select {{ d }} as d{% if not loop.last %} union all {% endif %}{% endfor %}
  ),
  numbers as (
    select a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d as n
    from digits a cross join digits b cross join digits c cross join digits e cross join digits f
  )
  select cast({{ dbt.dateadd('day', 'n', "cast('" ~ start_date ~ "' as date)") }} as date) as date_day
  from numbers
  where n <= {{ dbt.datediff("cast('" ~ start_date ~ "' as date)", "cast('" ~ end_date ~ "' as date)", 'day') }}
{%- endmacro %}
