{#- One row per calendar day from var date_spine_start to date_spine_end (UTC days), generated in-project. -#}

with days as (

    {{ cms.date_spine(var('date_spine_start'), var('date_spine_end')) }}

)

select
    date_day,
    extract(year from date_day) as year_number,
    extract(quarter from date_day) as quarter_number,
    extract(month from date_day) as month_number,
    extract(day from date_day) as day_of_month,
    {{ cms.iso_day_of_week('date_day') }} as iso_day_of_week,
    case {{ cms.iso_day_of_week('date_day') }}
        {% for name in ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'] -%}
        when {{ loop.index }} then '{{ name }}'
        {% endfor -%}
    end as day_name,
    {{ cms.iso_day_of_week('date_day') }} >= 6 as is_weekend,
    cast({{ dbt.dateadd('day', '1 - ' ~ cms.iso_day_of_week('date_day'), 'date_day') }} as date) as week_start_date,
    cast({{ dbt.date_trunc('month', 'date_day') }} as date) as month_start_date
from days
