"""Structured query -> one SELECT over the allow-listed marts, built with sqlglot's expression builder.

Values reach the SQL only as literals built by sqlglot (and every one was checked against the ontology
first); measure expressions come from the semantic layer. The result still goes through the guard.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import sqlglot
from sqlglot import exp

from cms_dagster.domain.model import Ontology
from cms_dagster.nlq import metricflow_sql, semantic
from cms_dagster.nlq.query import Comparison, QueryError, StructuredQuery
from cms_dagster.nlq.scope import Scope, resolve
from cms_dagster.nlq.timephrase import Window

ROW_LIMIT = 1000


@dataclass
class Reference:
    """The windows "usual" (or "last week") is computed over, and how the answer describes it."""

    windows: list[Window]
    text: str


@dataclass
class Compiled:
    sql: str
    columns: list[str]
    keys: list[str]
    window: Window
    reference: Reference | None = None
    notes: list[str] = field(default_factory=list)
    compiler: str = "sqlglot"  # "metricflow" when MetricFlow wrote the SQL of a metric question


def _ts(t: dt.datetime) -> exp.Expression:
    return exp.cast(exp.Literal.string(t.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")), "timestamp")


def _c(name: str, table: str = "t") -> exp.Column:
    return exp.column(name, table=table)


def _sql(text: str, alias: str = "t") -> exp.Expression:
    """A project-owned SQL fragment (from the semantic layer) with its columns qualified by ``alias``."""
    e = sqlglot.parse_one(text, read="duckdb")
    for c in e.find_all(exp.Column):
        if not c.table:
            c.set("table", exp.to_identifier(alias))
    return e


def _in(column: exp.Expression, values: frozenset[str] | None) -> exp.Expression | None:
    if values is None:
        return None
    if not values:
        return exp.false()
    return column.isin(*[exp.Literal.string(v) for v in sorted(values)])


def _between(column: exp.Expression, w: Window) -> exp.Expression:
    return exp.and_(column >= _ts(w.start), column < _ts(w.end))


def _any_window(column: exp.Expression, ws: list[Window]) -> exp.Expression:
    return exp.or_(*[exp.paren(_between(column, w)) for w in ws]) if len(ws) > 1 else _between(column, ws[0])


def _and(*conds: exp.Expression | None) -> exp.Expression | None:
    cs = [c for c in conds if c is not None]
    return exp.and_(*cs) if cs else None


def reference_windows(window: Window, kind: str, history_start: dt.datetime | None) -> Reference:
    """"usual": the 7 days before the window; with 4 weeks of history, the same window on the same
    weekday of the 4 weeks before. "previous_week": the same window 7 days earlier."""
    if kind == "previous_week":
        w = window.shifted(-7)
        return Reference([w], f"the same period a week earlier ({w.start:%Y-%m-%d %H:%M}–{w.end:%Y-%m-%d %H:%M} UTC)")
    weeks = semantic.USUAL_WEEKS
    if history_start is not None and history_start <= window.start - dt.timedelta(days=7 * weeks):
        ws = [window.shifted(-7 * k) for k in range(1, weeks + 1)]
        return Reference(ws, f"the same weekday and hours of the {weeks} weeks before")
    days = semantic.USUAL_DAYS
    w = Window(window.start - dt.timedelta(days=days), window.start, f"{days} days before")
    return Reference(
        [w],
        f"the {days} days before ({w.start:%Y-%m-%d %H:%M}–{w.end:%Y-%m-%d %H:%M} UTC; fewer than {weeks} weeks of history, so every weekday counts)",
    )


def _limit(q: StructuredQuery) -> int:
    return min(q.limit or ROW_LIMIT, ROW_LIMIT)


def _cmp(left: exp.Expression, op: str, right: exp.Expression) -> exp.Expression:
    return {">": exp.GT, "<": exp.LT, ">=": exp.GTE, "<=": exp.LTE}[op](this=left, expression=right)


def _usual_bound(op: str, usual: exp.Expression) -> exp.Expression:
    """"more than usual" = above SLOW_FACTOR x usual; "less than usual" = below usual / SLOW_FACTOR."""
    f = exp.Literal.number(semantic.SLOW_FACTOR)
    return exp.Mul(this=usual, expression=f) if op in (">", ">=") else exp.Div(this=usual, expression=f)


def _marts(name: str, alias: str = "t") -> exp.Table:
    return exp.Table(this=exp.to_identifier(name), db=exp.to_identifier("marts"), alias=exp.TableAlias(this=exp.to_identifier(alias)))


# ---- listings ------------------------------------------------------------------------------------------
def _runs(q: StructuredQuery, sc: Scope, w: Window, as_of: dt.datetime, history_start: dt.datetime | None) -> Compiled:
    conds = set(q.conditions)
    tcol = "actual_start_ts"
    where: list[exp.Expression | None] = [_in(_c("job_key"), sc.jobs)]
    if "failed" in conds:
        where.append(_c("status").eq(exp.Literal.string("failed")))
        tcol = "actual_end_ts"
    if "succeeded" in conds:
        where.append(_c("status").eq(exp.Literal.string("success")))
        tcol = "actual_end_ts"
    if "sla_breached" in conds:
        where.append(_c("is_sla_breached"))
        tcol = "sla_deadline_ts"
    comp = q.comparison
    measure = (comp.measure if comp else None) or q.metric or "duration"
    if comp is not None and measure in ("duration", "records_per_minute", "start_delay") and tcol == "actual_start_ts":
        tcol = "actual_end_ts" if measure != "start_delay" else tcol
        if measure != "start_delay":
            where.append(_c("status").eq(exp.Literal.string("success")))
    if "running" in conds:
        where.append(_c("actual_start_ts") < _ts(as_of))
        where.append(exp.or_(_c("actual_end_ts").is_(exp.null()), _c("actual_end_ts") >= _ts(as_of)))
    else:
        where.append(_between(_c(tcol), w))
    column = {"duration": "duration_s", "start_delay": "start_delay_s", "records_per_minute": "records_per_minute"}.get(measure)
    select = [_c(x) for x in semantic.RUN_COLUMNS]
    ref = None
    query = exp.select(*select).from_(_marts("fct_batch_runs"))
    if comp is not None:
        if column is None:
            raise QueryError(f"runs cannot be compared on {measure}; compare their duration, start delay or records per minute")
        if comp.kind == "threshold":
            where.append(_cmp(_c(column), comp.op, exp.Literal.number(comp.value)))
        else:
            ref = reference_windows(w, comp.kind, history_start)
            query = _join_usual(query, "fct_batch_runs", "job_key", column, "status", "actual_end_ts", ref)
            where.append(_cmp(_c(column), comp.op, _usual_value(comp)))
    order = [_c("actual_start_ts"), _c("run_id")]
    if q.order and column:
        order = [exp.Ordered(this=_c(column), desc=q.order == "desc"), _c("run_id")]
    query = query.where(_and(*where)).order_by(*order).limit(_limit(q))
    cols = [*semantic.RUN_COLUMNS] + (["usual_value", "usual_samples"] if ref else [])
    return Compiled(query.sql(), cols, ["run_id"], w, ref)



def _join_usual(query: exp.Select, mart: str, key: str, column: str, status_col: str, time_col: str, ref: Reference) -> exp.Select:
    """Join each row to its key's usual value: the median of `column` over the successful rows of the reference windows."""
    usual = (
        exp.select(_c(key, "r"), exp.alias_(exp.func("median", _c(column, "r")), "usual_value"),
                   exp.alias_(exp.func("count", exp.Star()), "usual_samples"))
        .from_(_marts(mart, "r"))
        .where(_and(_c(status_col, "r").eq(exp.Literal.string("success")), _any_window(_c(time_col, "r"), ref.windows)))
        .group_by(_c(key, "r"))
    )
    query = query.with_("usual", as_=usual).join(
        exp.Table(this=exp.to_identifier("usual"), alias=exp.TableAlias(this=exp.to_identifier("u"))),
        on=_c(key, "u").eq(_c(key)),
        join_type="inner",
    )
    return query.select(_c("usual_value", "u"), _c("usual_samples", "u"))


def _usual_value(comp: Comparison) -> exp.Expression:
    """The bound a row is compared with: the usual value widened by SLOW_FACTOR, or last week's value as it was."""
    return _usual_bound(comp.op, _c("usual_value", "u")) if comp.kind == "usual" else _c("usual_value", "u")


def _stage_runs(q: StructuredQuery, sc: Scope, w: Window, as_of: dt.datetime, history_start: dt.datetime | None) -> Compiled:
    conds = set(q.conditions)
    tcol = "stage_started_ts"
    where: list[exp.Expression | None] = [_in(_c("stage_key"), sc.stages)]
    if "failed" in conds:
        where.append(_c("final_status").eq(exp.Literal.string("failed")))
        tcol = "stage_finished_ts"
    if "succeeded" in conds:
        where.append(_c("final_status").eq(exp.Literal.string("success")))
        tcol = "stage_finished_ts"
    if "retried" in conds:
        where.append(_c("attempts") > exp.Literal.number(1))
    if "on_critical_path" in conds:
        where.append(_c("is_on_critical_path"))
    if "running" in conds:
        where.append(_c("stage_started_ts") < _ts(as_of))
        where.append(exp.or_(_c("stage_finished_ts").is_(exp.null()), _c("stage_finished_ts") >= _ts(as_of)))
    else:
        where.append(_between(_c(tcol), w))
    comp = q.comparison
    query = exp.select(*[_c(x) for x in semantic.STAGE_COLUMNS]).from_(_marts("mart_stage_bottlenecks"))
    ref = None
    if comp is not None:
        measure = comp.measure or "stage_duration"
        if measure not in ("stage_duration", "duration"):
            raise QueryError(f"sub-stages are compared on their duration, not {measure}")
        where.append(_c("stage_finished_ts") <= _ts(as_of))
        if comp.kind == "threshold":
            where.append(_cmp(_c("elapsed_s"), comp.op, exp.Literal.number(comp.value)))
        else:
            ref = reference_windows(w, comp.kind, history_start)
            query = _join_usual(query, "mart_stage_bottlenecks", "stage_key", "elapsed_s", "final_status", "stage_started_ts", ref)
            where.append(_cmp(_c("elapsed_s"), comp.op, _usual_value(comp)))
    order = [_c("stage_started_ts"), _c("run_id"), _c("stage_id")]
    if q.order:
        order = [exp.Ordered(this=_c("elapsed_s"), desc=q.order == "desc"), _c("run_id"), _c("stage_id")]
    query = query.where(_and(*where)).order_by(*order).limit(_limit(q))
    cols = [*semantic.STAGE_COLUMNS] + (["usual_value", "usual_samples"] if ref else [])
    return Compiled(query.sql(), cols, ["run_id", "stage_id"], w, ref)


def _jobs(q: StructuredQuery, sc: Scope, w: Window) -> Compiled:
    """The jobs in scope ("which jobs depend on the bloomberg feed"): the ontology as the warehouse holds it."""
    query = (
        exp.select(*[_c(x) for x in semantic.JOB_COLUMNS])
        .from_(_marts("dim_job"))
        .where(_in(_c("job_key"), sc.jobs) or exp.true())
        .order_by(_c("job_key"))
        .limit(_limit(q))
    )
    return Compiled(query.sql(), list(semantic.JOB_COLUMNS), ["job_key"], w)


def _outages(q: StructuredQuery, sc: Scope, w: Window, as_of: dt.datetime) -> Compiled:
    where = [
        _in(_c("feed_id"), sc.feeds),
        _c("outage_start_ts") < _ts(w.end),
        exp.or_(_c("outage_end_ts").is_(exp.null()), _c("outage_end_ts") > _ts(w.start)),
    ]
    if q.comparison is not None and q.comparison.kind == "threshold":
        where.append(_cmp(_c("duration_minutes"), q.comparison.op, exp.Literal.number(q.comparison.value)))
    query = (
        exp.select(*[_c(x) for x in semantic.OUTAGE_COLUMNS])
        .from_(_marts("fct_feed_outages"))
        .where(_and(*where))
        .order_by(_c("outage_start_ts"), _c("feed_id"))
        .limit(_limit(q))
    )
    return Compiled(query.sql(), list(semantic.OUTAGE_COLUMNS), ["feed_id", "outage_start_ts"], w)


_FEED_MEASURES = {
    "minutes_down": "count_if(not is_up)",
    "stale_minutes": "count_if(is_stale)",
    "max_staleness_s": "max(staleness_s)",
    "avg_latency_ms": "avg(latency_ms)",
    "availability_pct": semantic.METRICS["availability"].expr,
    "messages": "sum(messages)",
}
_FEED_METRIC_COLUMN = {
    "availability": "availability_pct",
    "staleness": "max_staleness_s",
    "stale_minutes": "stale_minutes",
    "latency": "avg_latency_ms",
    "messages": "messages",
}


def _grouped_with_reference(
    q: StructuredQuery,
    key: str,
    table: str,
    measures: dict[str, str],
    base_where: list[exp.Expression | None],
    measure_col: str | None,
    w: Window,
    history_start: dt.datetime | None,
    extra_select: list[exp.Expression],
    key_alias: str,
    count_like: bool = False,
) -> tuple[exp.Select, list[str], Reference | None]:
    tcol = semantic.TABLES[table].time_column
    cur = exp.select(exp.alias_(_c(key), key_alias), *extra_select, *[exp.alias_(_sql(e), n) for n, e in measures.items()])
    cur = cur.from_(_marts(table)).where(_and(*base_where, _between(_c(tcol), w))).group_by(_c(key))
    comp = q.comparison
    having: list[exp.Expression] = []
    conds = set(q.conditions)
    if "delayed" in conds:
        having.append(_sql(_FEED_MEASURES["stale_minutes"]) > exp.Literal.number(0))
    if "down" in conds:
        having.append(_sql(_FEED_MEASURES["minutes_down"]) > exp.Literal.number(0))
    ref = None
    cols = [key_alias, *[e.alias_or_name for e in extra_select], *measures]
    if comp is not None and measure_col is not None and comp.kind == "threshold":
        having.append(_cmp(_sql(measures[measure_col]), comp.op, exp.Literal.number(comp.value)))
    if having:
        cur = cur.having(exp.and_(*having))
    if comp is None or comp.kind == "threshold" or measure_col is None:
        return cur.order_by(*( [exp.Ordered(this=exp.column(measure_col), desc=q.order == "desc")] if q.order and measure_col else []), exp.column(key_alias)).limit(_limit(q)), cols, ref
    ref = reference_windows(w, comp.kind, history_start)
    refq = (
        exp.select(exp.alias_(_c(key), key_alias), exp.alias_(_sql(measures[measure_col]), "usual_value"))
        .from_(_marts(table))
        .where(_and(*base_where, _any_window(_c(tcol), ref.windows)))
        .group_by(_c(key))
    )
    usual = _c("usual_value", "u")
    if count_like:
        span = sum((x.end - x.start).total_seconds() for x in ref.windows)
        usual = exp.Mul(this=usual, expression=exp.Literal.number(round((w.end - w.start).total_seconds() / span, 6)))
    bound = _usual_bound(comp.op, usual) if comp.kind == "usual" else usual
    outer = (
        exp.select(*[_c(c, "c") for c in cols], exp.alias_(usual, "usual_value"))
        .with_("cur", as_=cur)
        .with_("usual", as_=refq)
        .from_(exp.Table(this=exp.to_identifier("cur"), alias=exp.TableAlias(this=exp.to_identifier("c"))))
        .join(
            exp.Table(this=exp.to_identifier("usual"), alias=exp.TableAlias(this=exp.to_identifier("u"))),
            on=_c(key_alias, "u").eq(_c(key_alias, "c")),
            join_type="inner",
        )
        .where(_cmp(_c(measure_col, "c"), comp.op, bound))
        .order_by(_c(key_alias, "c"))
        .limit(_limit(q))
    )
    return outer, [*cols, "usual_value"], ref


def _feeds(q: StructuredQuery, sc: Scope, w: Window, history_start: dt.datetime | None) -> Compiled:
    measure = (q.comparison.measure if q.comparison else None) or q.metric
    if measure is not None and measure not in _FEED_METRIC_COLUMN:
        raise QueryError(f"feeds are described by {', '.join(_FEED_METRIC_COLUMN)}, not {measure}")
    measure_col = _FEED_METRIC_COLUMN.get(measure or "") or ("max_staleness_s" if q.comparison else None)
    query, cols, ref = _grouped_with_reference(
        q, "feed_id", "fct_feed_status", _FEED_MEASURES, [_in(_c("feed_id"), sc.feeds)], measure_col, w,
        history_start, [exp.alias_(exp.func("max", _c("provider")), "provider")], "feed_id",
        count_like=measure_col in ("stale_minutes", "minutes_down", "messages"),
    )
    return Compiled(query.sql(), cols, ["feed_id"], w, ref)


def _resources(q: StructuredQuery, sc: Scope, w: Window, history_start: dt.datetime | None) -> Compiled:
    name = (q.comparison.measure if q.comparison and q.comparison.measure else None) or q.metric or "cpu"
    m = semantic.METRICS[name]
    if m.table != "fct_infra_metrics":
        raise QueryError(f"resources are described by cpu, memory, connections or queue depth, not {name}")
    query, cols, ref = _grouped_with_reference(
        q, "entity_id", "fct_infra_metrics", {name: m.expr}, [_in(_c("entity_id"), sc.resources), _sql(m.where)],
        name, w, history_start, [], "resource_id",
    )
    return Compiled(query.sql(), cols, ["resource_id"], w, ref)


# ---- metrics -------------------------------------------------------------------------------------------
_SCOPE_COLUMN = {
    "fct_batch_runs": ("job_key", "jobs"),
    "mart_stage_bottlenecks": ("stage_key", "stages"),
    "fct_feed_status": ("feed_id", "feeds"),
    "fct_feed_outages": ("feed_id", "feeds"),
    "fct_infra_metrics": ("entity_id", "resources"),
}
_GROUP_NAMES = {"asset_class_id": "asset_class_id", "job_key": "job_key", "stage_key": "stage_key", "feed_id": "feed_id",
                "provider": "provider", "entity_id": "resource_id", "status": "status"}  # fmt: skip


def _metric(q: StructuredQuery, sc: Scope, w: Window, history_start: dt.datetime | None) -> Compiled:
    m = semantic.METRICS[q.metric or ""]
    key_col, attr = _SCOPE_COLUMN[m.table]
    base = [_in(_c(key_col), getattr(sc, attr)), _sql(m.where) if m.where else None]
    groups: list[tuple[exp.Expression, str]] = []
    for g in q.group_by:
        if g in semantic.TIME_GRAINS:
            groups.append((exp.func("date_trunc", exp.Literal.string(g), _c(m.time_column)), g))
            continue
        col = semantic.GROUPINGS[m.table].get(g)
        if col is None:
            raise QueryError(f"{m.name} cannot be broken down by {g.replace('_', ' ')}; by: {', '.join(semantic.GROUPINGS[m.table])}, day or hour")
        groups.append((_c(col), _GROUP_NAMES.get(col, col)))
    comp = q.comparison
    select = [exp.alias_(e, n) for e, n in groups] + [exp.alias_(_sql(m.expr), m.name)]
    cur = exp.select(*select).from_(_marts(m.table)).where(_and(*base, _between(_c(m.time_column), w)))
    if groups:
        cur = cur.group_by(*[e for e, _ in groups])
    names = [n for _, n in groups]
    cols = [*names, m.name]
    if comp is None or (comp.kind == "threshold" and not groups):
        if comp is not None:
            pass  # a single value: the answer says whether it is above the threshold
        order = [exp.Ordered(this=exp.column(m.name), desc=q.order == "desc")] if q.order else [exp.column(n) for n in names]
        if comp is not None and comp.kind == "threshold" and groups:
            cur = cur.having(_cmp(_sql(m.expr), comp.op, exp.Literal.number(comp.value)))
        query = cur.order_by(*order).limit(_limit(q)) if order else cur.limit(_limit(q))
        return Compiled(query.sql(), cols, names or [m.name], w)
    if comp.kind == "threshold":
        query = cur.having(_cmp(_sql(m.expr), comp.op, exp.Literal.number(comp.value))).order_by(*[exp.column(n) for n in names]).limit(_limit(q))
        return Compiled(query.sql(), cols, names, w)
    ref = reference_windows(w, comp.kind, history_start)
    refq = exp.select(*[exp.alias_(e.copy(), n) for e, n in groups if n not in semantic.TIME_GRAINS], exp.alias_(_sql(m.expr), "usual_value"))
    refq = refq.from_(_marts(m.table)).where(_and(*base, _any_window(_c(m.time_column), ref.windows)))
    keys = [n for n in names if n not in semantic.TIME_GRAINS]
    if keys:
        refq = refq.group_by(*[e.copy() for e, n in groups if n not in semantic.TIME_GRAINS])
    usual: exp.Expression = _c("usual_value", "u")
    if m.expr.startswith(("count(", "sum(")):
        span = sum((x.end - x.start).total_seconds() for x in ref.windows)
        usual = exp.Mul(this=usual, expression=exp.Literal.number(round((w.end - w.start).total_seconds() / span, 6)))
    outer = exp.select(*[_c(c, "c") for c in cols], exp.alias_(usual, "usual_value")).with_("cur", as_=cur).with_("usual", as_=refq)
    outer = outer.from_(exp.Table(this=exp.to_identifier("cur"), alias=exp.TableAlias(this=exp.to_identifier("c"))))
    on = _and(*[_c(k, "u").eq(_c(k, "c")) for k in keys]) or exp.true()
    outer = outer.join(exp.Table(this=exp.to_identifier("usual"), alias=exp.TableAlias(this=exp.to_identifier("u"))), on=on, join_type="left" if not keys else "inner")
    if groups:
        bound = _usual_bound(comp.op, usual) if comp.kind == "usual" else usual
        outer = outer.where(_cmp(_c(m.name, "c"), comp.op, bound))
    outer = outer.order_by(*[_c(n, "c") for n in names]).limit(_limit(q)) if names else outer.limit(_limit(q))
    return Compiled(outer.sql(), [*cols, "usual_value"], names or [m.name], w, ref)


def compile_query(
    q: StructuredQuery,
    ont: Ontology,
    window: Window,
    as_of: dt.datetime,
    history_start: dt.datetime | None = None,
    dialect: str = "duckdb",
    semantic_manifest: Path | None = None,
) -> Compiled:
    """The SQL of a checked structured query (``history_start``: the earliest data, for "usual").

    With ``semantic_manifest`` (dbt's target/semantic_manifest.json), MetricFlow compiles the metric
    questions it can express; the others, and listings, are built with sqlglot.
    """
    q.check()
    sc = resolve(q.filters, ont)
    mf = None
    if q.kind == "metric" and semantic_manifest is not None and semantic_manifest.exists():
        mf = metricflow_sql.compile_metric(q, sc, window, semantic_manifest, _limit(q))
    if mf is not None:
        c = Compiled(mf[0], mf[1], mf[2], window, compiler="metricflow")
    elif q.kind == "metric":
        c = _metric(q, sc, window, history_start)
    elif q.entity == "runs":
        c = _runs(q, sc, window, as_of, history_start)
    elif q.entity == "stage_runs":
        c = _stage_runs(q, sc, window, as_of, history_start)
    elif q.entity == "outages":
        c = _outages(q, sc, window, as_of)
    elif q.entity == "jobs":
        c = _jobs(q, sc, window)
    elif q.entity == "feeds":
        c = _feeds(q, sc, window, history_start)
    else:
        c = _resources(q, sc, window, history_start)
    if dialect != "duckdb":
        c.sql = sqlglot.transpile(c.sql, read="duckdb", write=dialect)[0]
    return c
