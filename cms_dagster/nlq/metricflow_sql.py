"""Metric questions compiled by MetricFlow from the dbt semantic layer (models/semantic/).

MetricFlow only writes the SQL here: its engine is given a SQL client that refuses to run anything, and
``explain`` returns the statement. The project wraps it (the output names and units `cms ask` uses, order,
row limit), and the caller still puts it through the guard and the read-only executor like any other SQL.

What MetricFlow compiles: a metric over a time window, filtered to the jobs / sub-stages / feeds /
resources in scope, grouped by the dimensions of its semantic model or by day / hour. Thresholds too
("failure rate by job above 10 %"). What it does not (``compile_metric`` returns None and the sqlglot
compiler answers): comparisons with "usual" or "last week", and groupings the semantic model has no
dimension for (sub-stages by job or asset class).
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from cms_dagster.nlq import semantic
from cms_dagster.nlq.query import StructuredQuery
from cms_dagster.nlq.scope import Scope
from cms_dagster.nlq.timephrase import Window

# the semantic model of each mart: the prefix of its dimensions, the entity its scope filters on
_MODELS: dict[str, tuple[str, str, str]] = {
    "fct_batch_runs": ("run", "job", "jobs"),
    "mart_stage_bottlenecks": ("stage_run", "stage", "stages"),
    "fct_feed_status": ("feed_minute", "feed", "feeds"),
    "fct_feed_outages": ("outage", "feed", "feeds"),
    "fct_infra_metrics": ("resource_minute", "resource", "resources"),
}
# group-by word -> (MetricFlow dimension without the prefix, the output column `cms ask` shows)
_GROUPS: dict[str, dict[str, tuple[str, str]]] = {
    "fct_batch_runs": {"asset_class": ("asset_class", "asset_class_id"), "job": ("job", "job_key"), "status": ("status", "status")},
    "mart_stage_bottlenecks": {"stage": ("stage", "stage_key")},
    "fct_feed_status": {"feed": ("feed", "feed_id"), "provider": ("provider", "provider")},
    "fct_feed_outages": {"feed": ("feed", "feed_id")},
    "fct_infra_metrics": {"resource": ("resource", "resource_id")},
}
# metrics MetricFlow computes as a fraction that `cms ask` shows as a percentage
_PERCENT = {"failure_rate", "availability", "sla_compliance"}


class _NoExecution:
    """The SQL client MetricFlow is built with: it may render SQL, never run it."""

    def __init__(self) -> None:
        from metricflow.protocols.sql_client import SqlEngine
        from metricflow.sql.render.duckdb_renderer import DuckDbSqlPlanRenderer

        self.sql_engine_type = SqlEngine.DUCKDB
        self.sql_plan_renderer = DuckDbSqlPlanRenderer()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("MetricFlow only compiles here; the guarded read-only executor runs the SQL")

    query = execute = dry_run = _refuse

    def close(self) -> None:
        return None

    def render_bind_parameter_key(self, bind_parameter_key: str) -> str:
        return f"${bind_parameter_key}"


_ENGINES: dict[tuple[str, float], Any] = {}
_LOCK = threading.Lock()


def engine(manifest: Path) -> Any:
    """A MetricFlowEngine over ``target/semantic_manifest.json`` (built once per process and file version)."""
    key = (str(manifest), manifest.stat().st_mtime)
    with _LOCK:
        if key not in _ENGINES:
            from metricflow.engine.metricflow_engine import MetricFlowEngine
            from metricflow_semantics.model.dbt_manifest_parser import (
                parse_manifest_from_dbt_generated_manifest,
            )
            from metricflow_semantics.model.semantic_manifest_lookup import SemanticManifestLookup

            parsed = parse_manifest_from_dbt_generated_manifest(manifest_json_string=manifest.read_text())
            _ENGINES[key] = MetricFlowEngine(SemanticManifestLookup(parsed), _NoExecution())  # type: ignore[arg-type]
        return _ENGINES[key]


def _lit(v: str) -> str:
    return exp.Literal.string(v).sql(dialect="duckdb")


def _ts(t: dt.datetime) -> str:
    return _lit(t.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"))


def _where(prefix: str, sql_filter: str) -> str:
    """A semantic.py filter ("status = 'failed'") over the model's dimensions, in MetricFlow's where syntax."""
    tree = sqlglot.parse_one(sql_filter, read="duckdb").transform(
        # transform, not replace in place: a filter that is one bare column ("is_sla_breached") is the root
        lambda n: exp.Var(this="{{ Dimension('" + f"{prefix}__{n.name}" + "') }}") if isinstance(n, exp.Column) else n
    )
    return tree.sql(dialect="duckdb")


def compile_metric(q: StructuredQuery, sc: Scope, w: Window, manifest: Path, limit: int) -> tuple[str, list[str], list[str]] | None:
    """(SQL, columns, keys) of a metric question compiled by MetricFlow, or None when it cannot express it."""
    comp = q.comparison
    if q.kind != "metric" or (comp is not None and comp.kind != "threshold"):
        return None
    m = semantic.METRICS[q.metric or ""]
    if m.table not in _MODELS:
        return None
    prefix, entity, attr = _MODELS[m.table]
    group_by: list[str] = []
    names: list[tuple[str, str]] = []  # (MetricFlow output column, our column)
    for g in q.group_by:
        if g in semantic.TIME_GRAINS:
            group_by.append(f"metric_time__{g}")
            names.append((f"metric_time__{g}", g))
            continue
        dim = _GROUPS[m.table].get(g)
        if dim is None:
            return None
        group_by.append(f"{prefix}__{dim[0]}")
        names.append((f"{prefix}__{dim[0]}", dim[1]))
    tdim = "{{ TimeDimension('" + f"{prefix}__{m.time_column}" + "', 'second') }}"
    where = [f"{tdim} >= {_ts(w.start)}", f"{tdim} < {_ts(w.end)}"]
    keys = getattr(sc, attr)
    if keys is not None:
        if not keys:
            return None
        where.append("{{ Entity('" + entity + "') }} in (" + ", ".join(_lit(k) for k in sorted(keys)) + ")")
    if m.where:
        where.append(_where(prefix, m.where))
    from metricflow.engine.metricflow_engine import MetricFlowQueryRequest

    request = MetricFlowQueryRequest.create(metric_names=[m.name], group_by_names=group_by, where_constraints=where)
    try:
        inner = engine(manifest).explain(request).sql_statement.sql
    except Exception:  # MetricFlow cannot resolve this combination: the sqlglot compiler answers it
        return None
    tree = sqlglot.parse_one(inner, read="duckdb")
    for t in tree.find_all(exp.Table):  # the profile's database name: the guard wants marts.<mart>
        if (t.db or "").lower() == "marts":
            t.set("catalog", None)
    value: exp.Expression = exp.column(m.name, table="mf")
    if m.name in _PERCENT:
        value = exp.Mul(this=exp.Literal.number("100.0"), expression=value)
    if m.expr.startswith("count"):  # a count: an integer, and 0 (not NULL) over no rows
        value = exp.func("coalesce", exp.cast(value, "bigint"), exp.Literal.number(0))
    outer = exp.select(*[exp.alias_(exp.column(src, table="mf"), dst) for src, dst in names], exp.alias_(value, m.name))
    outer = outer.from_(exp.Subquery(this=tree, alias=exp.TableAlias(this=exp.to_identifier("mf"))))
    cols = [dst for _, dst in names]
    if comp is not None and cols:  # "failure rate by job above 10 %": the groups past the threshold
        op = {">": exp.GT, "<": exp.LT, ">=": exp.GTE, "<=": exp.LTE}[comp.op]
        outer = outer.where(op(this=value.copy(), expression=exp.Literal.number(comp.value)))
        return outer.order_by(*[exp.column(c) for c in cols]).limit(limit).sql(dialect="duckdb", comments=False), [*cols, m.name], cols
    if q.order:
        outer = outer.order_by(exp.Ordered(this=exp.column(m.name), desc=q.order == "desc"))
    elif cols:
        outer = outer.order_by(*[exp.column(c) for c in cols])
    return outer.limit(limit).sql(dialect="duckdb", comments=False), [*cols, m.name], cols or [m.name]
