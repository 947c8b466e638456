"""``ask``: a question in, an :class:`Answer` out — the one function `cms ask` and the dashboard call.

question -> engine (offline or OpenAI) -> structured query -> compiled SELECT -> guard -> read-only run
-> rows and a one-sentence answer. Refusals and clarifying questions come back in the same shape.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from cms_dagster.domain.model import Ontology
from cms_dagster.nlq import guard, semantic, timephrase
from cms_dagster.nlq.compile import ROW_LIMIT, Compiled, compile_query
from cms_dagster.nlq.execute import DEFAULT_TIMEOUT_S, ExecutionError, history_start, run_readonly
from cms_dagster.nlq.offline import OfflineEngine, Parsed
from cms_dagster.nlq.query import QueryError, StructuredQuery
from cms_dagster.nlq.scope import ScopeError
from cms_dagster.warehouse.client import Warehouse
from cms_dagster.warehouse.dbt import dbt_project_dir

DEFAULT_TIME = "today"


class Engine(Protocol):
    name: str

    def parse(self, question: str, as_of: dt.datetime, timezone: str = "UTC") -> Parsed: ...


@dataclass
class Answer:
    question: str
    interpretation: dict[str, Any] | None = None
    sql: str | None = None
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    answer: str = ""
    refused: str | None = None
    clarify: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "interpretation": self.interpretation,
            "sql": self.sql,
            "columns": self.columns,
            "rows": self.rows,
            "answer": self.answer,
            "refused": self.refused,
            "clarify": self.clarify,
        }


def _value(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, pd.Timestamp) or isinstance(v, dt.datetime):
        t = pd.Timestamp(v)
        if pd.isna(t):
            return None
        t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(v, dt.date):
        return v.isoformat()
    if hasattr(v, "item"):  # numpy scalars
        v = v.item()
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 3)
    return v


def rows_of(df: pd.DataFrame) -> list[dict[str, Any]]:
    cols = list(df.columns)
    return [{c: _value(v) for c, v in zip(cols, rec, strict=True)} for rec in df.itertuples(index=False, name=None)]


def default_engine(ontology: Ontology, llm: str = "offline", settings: Any = None) -> Engine:
    """The engine CMS_LLM selects: the offline parser, or OpenAI through its adapter."""
    if llm == "openai":
        from cms_dagster.nlq.openai_engine import LlmEngine

        return LlmEngine.from_settings(settings, ontology)
    return OfflineEngine(ontology)


_ENGINES: dict[int, OfflineEngine] = {}


def _offline(ontology: Ontology) -> OfflineEngine:
    eng = _ENGINES.get(id(ontology))
    if eng is None or eng.ontology is not ontology:
        eng = _ENGINES[id(ontology)] = OfflineEngine(ontology)
    return eng


def ask(
    question: str,
    warehouse: Warehouse,
    ontology: Ontology,
    as_of: dt.datetime | str | None = None,
    engine: Engine | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    semantic_manifest: Path | None = None,
) -> Answer:
    """Answer ``question`` from the warehouse's marts, as of ``as_of`` (default now, UTC).

    Metric questions are compiled by MetricFlow from ``semantic_manifest`` (default: the dbt project's
    target/semantic_manifest.json, written by `cms dbt prepare`) where it can express them.

    Never raises for a bad question: a refusal (out of scope, unsafe) or a clarifying question comes back
    in the Answer. Raises ExecutionError only when the warehouse itself cannot be read.
    """
    tz = getattr(warehouse.settings, "timezone", "UTC") or "UTC"
    try:
        at = as_of if isinstance(as_of, dt.datetime) else timephrase.parse_as_of(as_of)
    except timephrase.TimeError as e:
        return Answer(question, refused=str(e))
    at = at.replace(tzinfo=dt.timezone.utc) if at.tzinfo is None else at.astimezone(dt.timezone.utc)
    eng = engine or _offline(ontology)
    parsed = eng.parse(question, at, tz)
    if parsed.refused or parsed.clarify or parsed.query is None:
        return Answer(
            question,
            interpretation={"engine": eng.name, "understood": parsed.understood} if parsed.understood else None,
            refused=parsed.refused,
            clarify=parsed.clarify if not parsed.refused else None,
            answer=parsed.refused or parsed.clarify or "",
        )
    q = parsed.query
    try:
        window = timephrase.resolve(q.time, at, tz, default=DEFAULT_TIME)
    except timephrase.TimeError as e:
        return Answer(question, clarify=f"{e}. Which period do you mean?", answer=str(e))
    understood = list(parsed.understood)
    if not q.time and q.entity != "jobs":
        understood.append(f"no time given → {window.describe()}")
    dialect = "snowflake" if warehouse.kind == "snowflake" else "duckdb"
    try:
        hist = None
        if q.comparison is not None and q.comparison.kind == "usual":
            table = semantic.ENTITIES[q.entity].table if q.kind == "list" else semantic.METRICS[q.metric or ""].table
            tcol = semantic.TABLES[table].time_column
            sql = f"select min({tcol}) as t from marts.{table} limit 1"
            guard.check(sql, dialect)
            h = history_start(warehouse, table, tcol, timeout_s)
            hist = None if h is None or pd.isna(h) else pd.Timestamp(h).tz_localize("UTC").to_pydatetime()
        manifest = semantic_manifest if semantic_manifest is not None else dbt_project_dir() / "target" / "semantic_manifest.json"
        compiled = compile_query(q, ontology, window, at, hist, dialect=dialect, semantic_manifest=manifest)
    except (QueryError, ScopeError) as e:
        return Answer(question, interpretation=_interp(q, eng.name, understood, window, None), clarify=f"{e}. Could you rephrase?", answer=str(e))
    try:
        guard.check(compiled.sql, dialect, ROW_LIMIT)
    except guard.GuardError as e:
        return Answer(question, interpretation=_interp(q, eng.name, understood, window, compiled), sql=compiled.sql, refused=f"the query was stopped by the guard: {e}", answer=f"refused: {e}")
    df = run_readonly(warehouse, compiled.sql, timeout_s)
    rows = rows_of(df)
    cols = list(df.columns)
    return Answer(
        question,
        interpretation=_interp(q, eng.name, understood, window, compiled),
        sql=compiled.sql,
        columns=cols,
        rows=rows,
        answer=sentence(q, compiled, rows),
    )


def _interp(q: StructuredQuery, engine: str, understood: list[str], window: timephrase.Window, c: Compiled | None) -> dict[str, Any]:
    d: dict[str, Any] = {"engine": engine, "query": q.to_dict(), "understood": understood,
                         "window": {"start": window.start.strftime("%Y-%m-%dT%H:%M:%SZ"), "end": window.end.strftime("%Y-%m-%dT%H:%M:%SZ"), "phrase": window.phrase}}  # fmt: skip
    if c is not None:
        d["compiler"] = c.compiler
    if c is not None and c.reference is not None:
        m = semantic.METRICS.get((q.comparison.measure if q.comparison else None) or q.metric or "")
        d["usual"] = {
            "reference": c.reference.text,
            "windows": [[w.start.strftime("%Y-%m-%dT%H:%M:%SZ"), w.end.strftime("%Y-%m-%dT%H:%M:%SZ")] for w in c.reference.windows],
            "definition": m.usual if m else "",
            "factor": semantic.SLOW_FACTOR if q.comparison and q.comparison.kind == "usual" else 1.0,
        }
    return d


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        s = f"{v:,.1f}" if abs(v) < 1e6 else f"{v:,.0f}"
    else:
        s = f"{v:,}" if isinstance(v, int) else str(v)
    if unit == "%":
        return f"{s} %"
    if unit in ("s", "ms"):
        return f"{s} {unit}"
    return s


def _scope_words(q: StructuredQuery) -> str:
    parts = []
    for k in ("asset_class", "job", "stage_type", "stage", "feed", "provider", "resource", "resource_kind"):
        if q.filters.get(k):
            parts.append(f"{k.replace('_', ' ')} {', '.join(q.filters[k])}")
    return (" for " + "; ".join(parts)) if parts else ""


_COND_WORDS = {
    "failed": "failed", "succeeded": "succeeded", "running": "running", "sla_breached": "breached their SLA",
    "retried": "retried", "on_critical_path": "on the critical path", "delayed": "delayed (stale beyond SLA)", "down": "down",
}  # fmt: skip


def sentence(q: StructuredQuery, c: Compiled, rows: list[dict[str, Any]]) -> str:
    """One sentence that answers the question from the rows."""
    when = c.window.describe() if q.entity != "jobs" else "in the ontology"
    usual = ""
    if c.reference is not None and q.comparison is not None:
        factor = f"{semantic.SLOW_FACTOR:g} × " if q.comparison.kind == "usual" else ""
        usual = f" (compared with {factor}the median/value over {c.reference.text})" if q.comparison.kind == "usual" else f" (compared with {c.reference.text})"
    if q.kind == "list":
        e = semantic.ENTITIES[q.entity or ""]
        conds = " and ".join(_COND_WORDS[x] for x in q.conditions)
        comp = ""
        if q.comparison is not None:
            word = "longer" if q.comparison.op in (">", ">=") else "shorter"
            if q.entity in ("feeds", "resources"):
                word = "higher" if q.comparison.op in (">", ">=") else "lower"
            what = q.comparison.measure or q.metric or ("duration" if q.entity in ("runs", "stage_runs") else "")
            if q.comparison.kind == "usual":
                comp = f" with {what.replace('_', ' ')} {word} than usual"
            elif q.comparison.kind == "previous_week":
                comp = f" with {what.replace('_', ' ')} {word} than last week"
            else:
                comp = f" with {what.replace('_', ' ')} {q.comparison.op} {q.comparison.value:g}"
        n = len(rows)
        noun = e.noun + ("" if n == 1 else "s")
        head = f"{'No' if n == 0 else n} {noun}{' ' + conds if conds else ''}{_scope_words(q)}{comp}, {when}{usual}"
        if n == 0:
            return head + "."
        ids = []
        for r in rows[:5]:
            ids.append(" ".join(str(r.get(k)) for k in e.keys if k in r) if e.name not in ("runs", "stage_runs") else
                       f"{r.get('job_key')}{'.' + str(r.get('stage_id')) if e.name == 'stage_runs' else ''} ({r.get('run_id')})")
        more = f" and {n - 5} more" if n > 5 else ""
        return f"{head}: {', '.join(ids)}{more}."
    m = semantic.METRICS[q.metric or ""]
    if not rows:
        return f"No data for {m.help}{_scope_words(q)}, {when}."
    if not c.keys or c.keys == [m.name]:
        r = rows[0]
        v = _fmt(r.get(m.name), m.unit)
        extra = ""
        if "usual_value" in r:
            extra = f"; usual {_fmt(r['usual_value'], m.unit)}{usual}"
        if q.comparison is not None and q.comparison.kind == "threshold":
            val = r.get(m.name)
            ok = val is not None and {">": val > q.comparison.value, "<": val < q.comparison.value,
                                      ">=": val >= q.comparison.value, "<=": val <= q.comparison.value}[q.comparison.op]  # fmt: skip
            extra = f" ({'yes' if ok else 'no'}: {q.comparison.op} {q.comparison.value:g})"
        unit = "" if m.unit in ("%", "s", "ms") else " " + (m.unit[:-1] if r.get(m.name) == 1 and m.unit.endswith("s") else m.unit)
        return f"{m.name.replace('_', ' ').capitalize()}{_scope_words(q)}, {when}: {v}{unit}{extra}."
    parts = []
    for r in rows[:8]:
        label = " ".join(str(r[k]) for k in c.keys if k in r)
        parts.append(f"{label} {_fmt(r.get(m.name), m.unit)}")
    more = f" and {len(rows) - 8} more" if len(rows) > 8 else ""
    by = ", ".join(k.replace("_id", "").replace("_key", "").replace("_", " ") for k in c.keys)
    return f"{m.name.replace('_', ' ').capitalize()} by {by}{_scope_words(q)}, {when}{usual}: {'; '.join(parts)}{more}."


__all__ = ["Answer", "Engine", "ExecutionError", "ask", "default_engine", "rows_of", "sentence"]
