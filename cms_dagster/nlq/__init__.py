"""Natural-language questions over the warehouse: a question becomes a structured query (a metric, or a
listing of entities with filters) — never free SQL — compiled over the allow-listed marts, checked by
the guard and run read-only. ``ask`` is the one entry point (`cms ask`, the dashboard's Ask page)."""

from cms_dagster.nlq.answer import Answer, Engine, ask, default_engine
from cms_dagster.nlq.execute import ExecutionError
from cms_dagster.nlq.offline import OfflineEngine, Parsed
from cms_dagster.nlq.query import StructuredQuery

__all__ = ["Answer", "Engine", "ExecutionError", "OfflineEngine", "Parsed", "StructuredQuery", "ask", "default_engine"]
