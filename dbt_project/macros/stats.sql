{#- Continuous percentile (linear interpolation) of `expr`, as an aggregate. -#}
{% macro percentile(expr, fraction) -%}
  {{ return(adapter.dispatch('percentile', 'cms')(expr, fraction)) }}
{%- endmacro %}

{% macro default__percentile(expr, fraction) -%}
  quantile_cont({{ expr }}, {{ fraction }})
{%- endmacro %}

{% macro snowflake__percentile(expr, fraction) -%}
  percentile_cont({{ fraction }}) within group (order by {{ expr }})
{%- endmacro %}

{#- Median as an aggregate (same on both warehouses, kept here so every statistic has one home). -#}
{% macro median(expr) -%}
  median({{ expr }})
{%- endmacro %}

{#- Percent (0-100) of `numerator` over `denominator`, null when the denominator is 0 or null. -#}
{% macro pct(numerator, denominator) -%}
  (100.0 * ({{ numerator }}) / nullif({{ denominator }}, 0))
{%- endmacro %}

{#- Rate of `numerator` per unit of `denominator`, null when the denominator is 0 or null. -#}
{% macro safe_divide(numerator, denominator) -%}
  (cast({{ numerator }} as double) / nullif({{ denominator }}, 0))
{%- endmacro %}
