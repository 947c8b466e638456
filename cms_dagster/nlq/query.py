"""The structured query a question becomes: a listing of entities or a metric, with filters, a time
phrase and an optional comparison. Both engines produce one; only the project compiles it to SQL.

Every field is checked against the semantic layer and the ontology before anything is compiled: an
engine (or a model) can only choose among known names, never write SQL.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cms_dagster.nlq import semantic

FILTER_FIELDS = (
    "asset_class",
    "job",
    "stage",
    "stage_type",
    "feed",
    "provider",
    "resource",
    "resource_kind",
    "status",
)
STATUSES = ("success", "failed", "running")
CONDITIONS = (
    "failed",  # runs / sub-stages that failed
    "succeeded",
    "running",  # runs running at the time asked
    "sla_breached",
    "retried",  # sub-stages with more than one attempt
    "on_critical_path",
    "delayed",  # feeds: data older than the staleness SLA
    "down",  # feeds: at least one down minute
)
COMPARISON_KINDS = ("usual", "previous_week", "threshold")
OPS = (">", "<", ">=", "<=")


class QueryError(ValueError):
    """The structured query names something the semantic layer does not have."""


@dataclass
class Comparison:
    """"longer than usual" (kind usual), "slower than last week" (previous_week), "above 80 %" (threshold)."""

    kind: str
    op: str = ">"
    value: float | None = None
    measure: str | None = None  # the metric compared (default: the query's metric or the entity's duration)


@dataclass
class StructuredQuery:
    kind: str  # "list" or "metric"
    entity: str | None = None  # list: runs | stage_runs | feeds | outages | resources
    metric: str | None = None  # metric: a name of semantic.METRICS; list: the measure shown/compared
    filters: dict[str, list[str]] = field(default_factory=dict)
    conditions: list[str] = field(default_factory=list)
    time: str | None = None  # a time phrase ("last 2 hours", "today", "since 9am", "2026-11-16")
    group_by: list[str] = field(default_factory=list)
    comparison: Comparison | None = None
    limit: int | None = None
    order: str | None = None  # "desc" = largest first (top N), "asc" = smallest first

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: v for k, v in d.items() if v not in (None, [], {})}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StructuredQuery:
        if not isinstance(d, dict):
            raise QueryError("the structured query must be an object")
        unknown = set(d) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise QueryError(f"unknown field(s) {sorted(unknown)} in the structured query")
        comp = d.get("comparison")
        q = cls(
            kind=str(d.get("kind") or ""),
            entity=d.get("entity"),
            metric=d.get("metric"),
            filters={str(k): [str(x) for x in (v if isinstance(v, list) else [v])] for k, v in (d.get("filters") or {}).items()},
            conditions=[str(c) for c in d.get("conditions") or []],
            time=d.get("time"),
            group_by=[str(g) for g in d.get("group_by") or []],
            comparison=Comparison(**comp) if isinstance(comp, dict) else None,
            limit=int(d["limit"]) if d.get("limit") is not None else None,
            order=d.get("order"),
        )
        q.check()
        return q

    def check(self) -> None:
        """Raise QueryError unless every name is one the semantic layer knows."""
        if self.kind not in ("list", "metric"):
            raise QueryError(f"kind must be 'list' or 'metric', not {self.kind!r}")
        if self.kind == "list" and self.entity not in semantic.ENTITIES:
            raise QueryError(f"entity must be one of {', '.join(semantic.ENTITIES)}, not {self.entity!r}")
        if self.kind == "metric" and self.metric not in semantic.METRICS:
            raise QueryError(f"metric must be one of {', '.join(semantic.METRICS)}, not {self.metric!r}")
        if self.metric is not None and self.metric not in semantic.METRICS:
            raise QueryError(f"unknown measure {self.metric!r}")
        for k in self.filters:
            if k not in FILTER_FIELDS:
                raise QueryError(f"unknown filter {k!r}; filters: {', '.join(FILTER_FIELDS)}")
        for c in self.conditions:
            if c not in CONDITIONS:
                raise QueryError(f"unknown condition {c!r}; conditions: {', '.join(CONDITIONS)}")
        for g in self.group_by:
            if g not in (*FILTER_FIELDS, *semantic.TIME_GRAINS):
                raise QueryError(f"cannot group by {g!r}")
        if self.comparison is not None:
            c = self.comparison
            if c.kind not in COMPARISON_KINDS:
                raise QueryError(f"comparison kind must be one of {', '.join(COMPARISON_KINDS)}")
            if c.op not in OPS:
                raise QueryError(f"comparison op must be one of {' '.join(OPS)}")
            if c.kind == "threshold" and c.value is None:
                raise QueryError("a threshold comparison needs a value")
            if c.measure is not None and c.measure not in semantic.METRICS:
                raise QueryError(f"unknown measure {c.measure!r} in the comparison")
        if self.limit is not None and not 0 < self.limit <= 1000:
            raise QueryError("limit must be between 1 and 1000")
        if self.order not in (None, "asc", "desc"):
            raise QueryError("order must be 'asc' or 'desc'")

