"""What a ranking answers with: candidates and the evidence behind them, as JSON and as text.

Plain Python (pandas); no Dagster.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["Candidate", "Evidence", "as_timedelta", "as_timestamp", "evidence_from_row", "iso_time"]


@dataclass(frozen=True)
class Evidence:
    """One series that supports a candidate: how far it moved from its baseline, and when."""

    node: str
    metric: str
    moved_at: pd.Timestamp | None  # when the change began (None when the series did not cross the threshold)
    peak_at: pd.Timestamp | None  # start of the strongest window of `persistence` points
    baseline: float  # median of the history
    observed: float  # median value of the strongest window
    z: float  # sustained robust z of that window (signed): (observed - baseline) / robust scale
    direction: str  # "up" or "down"

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "metric": self.metric,
            "moved_at": iso_time(self.moved_at),
            "peak_at": iso_time(self.peak_at),
            "baseline": _num(self.baseline),
            "observed": _num(self.observed),
            "z": _num(self.z),
            "direction": self.direction,
        }

    def describe(self) -> str:
        when = (
            f"moved at {iso_time(self.moved_at)}"
            if self.moved_at is not None
            else f"peaked at {iso_time(self.peak_at)}"
        )
        return f"{self.metric} {when}: {_fmt(self.baseline)} -> {_fmt(self.observed)} (z {self.z:+.1f})"


@dataclass(frozen=True)
class Candidate:
    """A ranked root-cause candidate node with its score and the evidence behind it."""

    node: str
    rank: int
    score: float
    anomalous: bool  # at least one of its series moved past the threshold
    strength: float  # largest sustained |z| among its series
    onset: pd.Timestamp | None  # earliest moved_at among its moved series
    explains: tuple[str, ...] = ()  # anomalous nodes depending on it that moved no earlier
    explained_by: tuple[str, ...] = ()  # anomalous dependencies that moved no later than it
    evidence: tuple[Evidence, ...] = field(default_factory=tuple)
    method: str = "graph"  # how it was ranked: "graph", or "standardised deviation" when the history was too short

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "node": self.node,
            "method": self.method,
            "score": round(self.score, 6),
            "anomalous": self.anomalous,
            "strength": _num(self.strength),
            "onset": iso_time(self.onset),
            "explains": list(self.explains),
            "explained_by": list(self.explained_by),
            "evidence": [e.to_dict() for e in self.evidence],
        }


def iso_time(ts: pd.Timestamp | None) -> str | None:
    if ts is None or pd.isna(ts):
        return None
    return ts.isoformat().replace("+00:00", "Z")


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.4g}" if abs(x) < 1e6 else f"{x:.3e}"


def as_timestamp(x: Any) -> pd.Timestamp | None:
    return None if x is None or pd.isna(x) else pd.Timestamp(x)


def as_timedelta(x: Any) -> pd.Timedelta | None:
    return None if x is None or pd.isna(x) else pd.Timedelta(x)


def evidence_from_row(row: Mapping[str, Any]) -> Evidence:
    """Evidence from one row of :func:`cms_dagster.rca.series.series_stats`."""
    return Evidence(
        node=str(row["node"]),
        metric=str(row["metric"]),
        moved_at=as_timestamp(row["moved_at"]) if row["moved"] else None,
        peak_at=as_timestamp(row["peak_at"]),
        baseline=float(row["baseline"]),
        observed=float(row["observed"]),
        z=float(row["z"]),
        direction=str(row["direction"]),
    )
