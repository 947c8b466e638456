{#- Every row satisfies `expression` (rows where it is false are returned; null counts as true). -#}
{% test expression_is_true(model, expression) %}

select *
from {{ model }}
where not ({{ expression }})

{% endtest %}
