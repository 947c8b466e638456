{#- Event-time windows: how incremental models recompute only what changed.

    event_window(this_column, back_hours) returns {'start': sql, 'end': sql} (each a SQL timestamp
    expression, or none for "open"):
      * a window given (window_bound: a Dagster partition run or backfill, or vars by hand):
          [window_start - back_hours, window_end)
      * else, an incremental run of an existing table: [max(this_column) of that table - back_hours, open)
      * else (first build, --full-refresh): everything (start and end none).
    back_hours defaults to var('lookback_hours'): points delivered up to that late are still picked up.
    forward_hours extends the end (a batch run touched by the window may have later points already loaded). -#}
{% macro event_window(this_column=none, back_hours=none, forward_hours=0) -%}
  {%- set back = var('lookback_hours') if back_hours is none else back_hours -%}
  {%- set ws = cms.window_bound('window_start') -%}
  {%- set we = cms.window_bound('window_end') -%}
  {%- if ws -%}
    {%- set end_sql = none -%}
    {%- if we -%}
      {%- set end_sql = dbt.dateadd('hour', forward_hours, cms.ts_literal(we)) if forward_hours else cms.ts_literal(we) -%}
    {%- endif -%}
    {{ return({'start': dbt.dateadd('hour', -back, cms.ts_literal(ws)), 'end': end_sql}) }}
  {%- elif this_column and is_incremental() -%}
    {%- set latest = none -%}
    {%- if execute -%}
      {%- set result = run_query('select max(' ~ this_column ~ ') from ' ~ this) -%}
      {%- set latest = result.columns[0].values()[0] -%}
    {%- endif -%}
    {%- if latest is none -%}
      {{ return({'start': none, 'end': none}) }}
    {%- endif -%}
    {{ return({'start': dbt.dateadd('hour', -back, cms.ts_literal(latest)), 'end': none}) }}
  {%- else -%}
    {{ return({'start': none, 'end': none}) }}
  {%- endif -%}
{%- endmacro %}

{#- A window bound, window_start or window_end (ISO-8601 UTC), or none: the var when given (`dbt build --vars`
    by hand), else the variable the Dagster asset sets for its dbt process (CMS_DBT_WINDOW_START /
    CMS_DBT_WINDOW_END). The variable is read at run time only (`execute`): read while parsing, it would
    make dbt re-parse the models for every new window, as a new --vars makes it re-parse the whole project. -#}
{% macro window_bound(name) -%}
  {%- set value = var(name, none) -%}
  {%- if not value and execute -%}
    {%- set value = env_var('CMS_DBT_' ~ (name | upper), '') or none -%}
  {%- endif -%}
  {{ return(value) }}
{%- endmacro %}

{#- A predicate: `column` within the window (true when the window is open on both sides). -#}
{% macro in_window(column, window) -%}
  {%- set parts = [] -%}
  {%- if window.start is not none %}{% do parts.append(column ~ ' >= ' ~ window.start) %}{% endif -%}
  {%- if window.end is not none %}{% do parts.append(column ~ ' < ' ~ window.end) %}{% endif -%}
  {%- if parts -%}({{ parts | join(' and ') }}){%- else -%}(1 = 1){%- endif -%}
{%- endmacro %}

{#- Incremental strategy per warehouse: DuckDB deletes the replaced keys then inserts; Snowflake MERGEs. -#}
{% macro incremental_strategy() -%}
  {{ return('merge' if target.type == 'snowflake' else 'delete+insert') }}
{%- endmacro %}

{#- Data tests on big incremental tables: a test configured with `where: "cms_window:<column>"` checks only
    the rows of the run's window (window_bound, with the lookback) and everything when no
    window is given (plain `dbt build`). Other `where` configs behave as in dbt. -#}
{% macro default__get_where_subquery(relation) -%}
  {%- set where = config.get('where') -%}
  {%- if where and (where | string).startswith('cms_window:') -%}
    {%- set column = (where | string)[11:] | trim -%}
    {%- set ws = cms.window_bound('window_start') -%}
    {%- set we = cms.window_bound('window_end') -%}
    {%- if ws -%}
      {%- set window = {'start': dbt.dateadd('hour', -var('lookback_hours'), cms.ts_literal(ws)),
                        'end': cms.ts_literal(we) if we else none} -%}
      {%- do return('(select * from ' ~ relation ~ ' where ' ~ cms.in_window(column, window) ~ ') dbt_subquery') -%}
    {%- endif -%}
    {%- do return(relation) -%}
  {%- elif where -%}
    {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') -%}
  {%- else -%}
    {%- do return(relation) -%}
  {%- endif -%}
{%- endmacro %}
