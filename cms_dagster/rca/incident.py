"""Root-cause analysis of an incident in the warehouse: the product's path from a start time to an answer.

``analyse_incident(query, start, ontology=...)`` reads the evidence around ``start`` from the fact marts
(:func:`cms_dagster.rca.evidence.evidence_frame`, seasonally adjusted), builds the dependency graph from
the ontology and ranks (entity, incident kind) hypotheses with :func:`cms_dagster.rca.hypotheses.rank_incident`.
``cms rca incident`` and ``benchmarks/rca_eval.py`` both call it, so the evaluation measures this code.

Plain Python (numpy, pandas); no Dagster.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cms_dagster.domain.model import Ontology
from cms_dagster.rca.evidence import EvidenceSettings, _utc, evidence_frame
from cms_dagster.rca.findings import iso_time
from cms_dagster.rca.hypotheses import Hypothesis, rank_incident
from cms_dagster.rca.validate import RcaInputError

__all__ = ["IncidentAnalysis", "analyse_incident"]


@dataclass(frozen=True)
class IncidentAnalysis:
    """The ranked hypotheses for one incident, the evidence they were ranked on, and any warnings."""

    start: pd.Timestamp
    target: str | None
    hypotheses: list[Hypothesis]
    evidence: pd.DataFrame = field(repr=False)
    warnings: tuple[str, ...] = ()

    @property
    def series(self) -> int:
        return int(self.evidence.groupby(["entity", "metric"]).ngroups) if len(self.evidence) else 0

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        return {
            "start": iso_time(self.start),
            "target": self.target,
            "series": self.series,
            "points": len(self.evidence),
            "warnings": list(self.warnings),
            "hypotheses": [h.to_dict() for h in self.hypotheses[:top]],
        }


def analyse_incident(
    query: Callable[[str, list], pd.DataFrame],
    start: dt.datetime | pd.Timestamp,
    *,
    ontology: Ontology,
    target: str | None = None,
    top_k: int | None = None,
    settings: EvidenceSettings | None = None,
    marts_schema: str = "marts",
) -> IncidentAnalysis:
    """Rank the root-cause hypotheses of the incident that began at ``start`` from the warehouse's marts.

    ``query(sql, params)`` runs SQL on the warehouse (``Warehouse.query``). Raises RcaInputError when the
    warehouse holds no series around ``start`` (say which dates it does hold).
    """
    t0 = _utc(start)
    s = settings or EvidenceSettings()
    frame = evidence_frame(query, t0.to_pydatetime(), s, marts_schema=marts_schema)
    if frame.empty or not (frame["time"] < t0).any() or not (frame["time"] >= t0).any():
        raise RcaInputError(
            f"the warehouse has no series both before and after {iso_time(t0)} (history "
            f"{s.history}, horizon {s.horizon}): pick a start inside the loaded data (`cms detect alarms` "
            "lists recent alarms; `cms demo` or the hourly assets load data)"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hypotheses = rank_incident(
            frame,
            ontology.dependency_edges(),
            t0,
            target=target,
            top_k=top_k,
            max_connections=ontology.max_connections(),
            staleness_sla=ontology.staleness_slas(),
        )
    return IncidentAnalysis(
        start=t0,
        target=target,
        hypotheses=hypotheses,
        evidence=frame,
        warnings=tuple(str(w.message) for w in caught),
    )
