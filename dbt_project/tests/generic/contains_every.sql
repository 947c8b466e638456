{#- Every value of `field` in the model `of` is a value of this column (the values missing here are returned):
    a relationships test declared on the referenced side, so it runs when that side is rebuilt. -#}
{% test contains_every(model, column_name, of, field) %}

select distinct {{ field }} as missing_value
from {{ of }}
where {{ field }} is not null
  and {{ field }} not in (select {{ column_name }} from {{ model }} where {{ column_name }} is not null)

{% endtest %}
