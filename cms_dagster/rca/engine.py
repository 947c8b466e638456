"""Generic root-cause ranking over any service graph.

``rank(metrics, graph, start)`` scores every (node, metric) series against its own history
(:mod:`cms_dagster.rca.series`), rolls the series up to nodes, then uses the dependency graph: a root cause is
anomalous itself, its anomalies are not explained by an anomalous dependency that moved no later than it,
and it explains the anomalous nodes that depend on it. See ``cms_dagster/rca/README.md`` for the method and
its references.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cms_dagster.rca.series import DEFAULT_ONSET_Z, DEFAULT_PERSISTENCE, DEFAULT_THRESHOLD, series_stats
from cms_dagster.rca.validate import (
    RcaInputError,
    RcaWarning,
    parse_time,
    prepare_edges,
    prepare_metrics,
)

__all__ = [
    "Candidate",
    "Evidence",
    "Propagation",
    "anomaly_weight",
    "confidence",
    "dependency_closure",
    "evidence_from_row",
    "lateness_factor",
    "propagate",
    "rank",
    "rank_series",
    "related_nodes",
]

EXPLAINED_FLOOR = 0.05  # what is left of a node's score when a sure root among its dependencies explains it
COVERAGE_WEIGHT = 1.0  # bonus for explaining every other anomalous node: score x (1 + weight x share)
LATENESS_STEPS = 10.0  # a node that moved this many sampling steps after the first anomalous one scores half
QUIET_FACTOR = 0.5  # a node whose series all stay under this x threshold blocks explanations through it
SURE_FACTOR = 5.0 / 3.0  # a node is surely anomalous from SURE_FACTOR x threshold (robust |z| 5 by default)
MAX_EVIDENCE = 10
_NO_TIME = pd.Timedelta(0)


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "node": self.node,
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


def dependency_closure(edges: Iterable[tuple[str, str]], node: str) -> set[str]:
    """``node`` and everything it transitively depends on (edges are (source, target) = source depends on target)."""
    adjacency: dict[str, list[str]] = {}
    for source, target in edges:
        adjacency.setdefault(source, []).append(target)
    return _reach(adjacency, node) | {node}


def related_nodes(edges: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    """Per node of the graph: itself, everything it transitively depends on and everything that
    transitively depends on it (not its siblings: two stages sharing a database are not related)."""
    forward: dict[str, list[str]] = {}
    backward: dict[str, list[str]] = {}
    for source, target in edges:
        forward.setdefault(source, []).append(target)
        backward.setdefault(target, []).append(source)
    return {n: {n} | _reach(forward, n) | _reach(backward, n) for n in set(forward) | set(backward)}


def _reach(adjacency: Mapping[str, list[str]], node: str, blocked: Container[str] = ()) -> set[str]:
    """Everything ``node`` transitively depends on; paths do not continue past ``blocked`` nodes."""
    seen: set[str] = set()
    queue = deque(adjacency.get(node, ()))
    while queue:
        nxt = queue.popleft()
        if nxt in seen or nxt == node:
            continue
        seen.add(nxt)
        if nxt not in blocked:
            queue.extend(adjacency.get(nxt, ()))
    return seen


@dataclass(frozen=True)
class Propagation:
    """Who explains whom among the anomalous nodes, and what that does to each node's score."""

    explains: dict[str, tuple[str, ...]]
    explained_by: dict[str, tuple[str, ...]]
    independence: dict[str, float]  # 1 when nothing explains the node, down to EXPLAINED_FLOOR
    coverage: dict[str, float]  # share of the other anomalous nodes it explains


def propagate(
    anomalous: Mapping[str, pd.Timestamp | None],
    plausibility: Mapping[str, float],
    edges: Iterable[tuple[str, str]],
    *,
    tolerance: pd.Timedelta = _NO_TIME,
    quiet: Container[str] = (),
) -> Propagation:
    """Relate anomalous nodes through the dependency graph.

    ``anomalous`` maps each anomalous node to its onset. A dependency d explains a node n when d moved no
    later than n (+ tolerance) and a path leads from n to d that does not pass through a ``quiet`` node (one
    whose metrics show nothing: a fault would have shown there on its way up; nodes without metrics pass
    it on). n's independence is
    1 - (1 - EXPLAINED_FLOOR) x max plausibility of its explainers, so a sure root below it leaves n only the
    floor, and a doubtful one (plausibility near 0) leaves it almost whole.
    """
    adjacency: dict[str, list[str]] = {}
    for source, target in edges:
        adjacency.setdefault(source, []).append(target)
    names = sorted(anomalous)
    explained_by: dict[str, list[str]] = {n: [] for n in names}
    explains: dict[str, list[str]] = {n: [] for n in names}
    far_future = pd.Timestamp.max.tz_localize("UTC")
    for n in names:
        onset_n = anomalous[n] if anomalous[n] is not None else far_future
        for d in sorted(_reach(adjacency, n, quiet)):
            if d not in anomalous:
                continue
            onset_d = anomalous[d] if anomalous[d] is not None else far_future
            if onset_d <= onset_n + tolerance:
                explained_by[n].append(d)
                explains[d].append(n)
    others = max(len(names) - 1, 1)
    independence = {}
    for n in names:
        worst = max((plausibility.get(d, 0.0) for d in explained_by[n]), default=0.0)
        independence[n] = 1.0 - (1.0 - EXPLAINED_FLOOR) * float(np.clip(worst, 0.0, 1.0))
    return Propagation(
        explains={n: tuple(v) for n, v in explains.items()},
        explained_by={n: tuple(v) for n, v in explained_by.items()},
        independence=independence,
        coverage={n: len(explains[n]) / others for n in names},
    )


def confidence(strength: float, threshold: float) -> float:
    """How sure we are that a node really moved: 0.3 at the threshold, 0.5 at the sure level, 1 at twice it."""
    sure = SURE_FACTOR * threshold
    return float(np.clip(0.5 + 0.5 * (strength - sure) / sure, 0.0, 1.0))


def anomaly_weight(strength: float, threshold: float) -> float:
    """Score weight of a node's own anomaly: (strength / sure level)^2 below the sure level, 1 above."""
    return min(1.0, strength / (SURE_FACTOR * threshold)) ** 2


def rank_series(
    stats: pd.DataFrame,
    edges: list[tuple[str, str]],
    *,
    target: str | None = None,
    top_k: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    tolerance: pd.Timedelta = _NO_TIME,
    step: pd.Timedelta | None = None,
) -> list[Candidate]:
    """Rank nodes from per-series statistics (the output of ``series_stats``) and the dependency edges.

    ``tolerance``: how much later a dependency may move and still explain a node. ``step``: the data's
    typical sampling step; a node that moved LATENESS_STEPS steps after the first anomalous node scores half.
    """
    known = set(stats["node"])
    graph_nodes = {x for e in edges for x in e}
    if target is not None and target not in known and target not in graph_nodes:
        raise RcaInputError(
            f"target {target!r} is neither in the metrics nor in the graph: name one of the nodes "
            f"(e.g. {', '.join(sorted(known)[:5])})"
        )
    usable = stats[stats["n_history"] > 0]
    order = usable.sort_values(["node", "strength"], ascending=[True, False], kind="stable")
    node_strength = order.groupby("node", sort=True)["strength"].max()
    moved = order[order["moved"]]
    node_onset = moved.groupby("node", sort=True)["moved_at"].min()
    node_step = moved.groupby("node", sort=True)["step"].max()

    anomalous = {
        n: as_timestamp(node_onset.get(n)) for n in node_strength.index if node_strength[n] >= threshold
    }
    plaus = {n: confidence(float(node_strength[n]), threshold) for n in anomalous}
    quiet = {n for n, a in node_strength.items() if a < QUIET_FACTOR * threshold}
    prop = propagate(anomalous, plaus, edges, tolerance=tolerance, quiet=quiet)

    allowed = dependency_closure(edges, target) if target is not None else None
    by_node: dict[str, list[dict[str, Any]]] = {}
    for r in order.to_dict("records"):
        by_node.setdefault(r["node"], []).append(r)  # strongest series first
    rows = []
    first = min((t for t in anomalous.values() if t is not None), default=None)
    for n, a in node_strength.items():
        if allowed is not None and n not in allowed:
            continue
        base = math.log1p(float(a))
        if n in anomalous:
            score = (
                base
                * prop.independence[n]
                * (1.0 + COVERAGE_WEIGHT * prop.coverage[n])
                * anomaly_weight(float(a), threshold)
            )
            score *= lateness_factor(anomalous[n], first, step, as_timedelta(node_step.get(n)))
        else:
            score = EXPLAINED_FLOOR**2 * base
        rows.append((n, score))
    onset_key = {n: (anomalous.get(n) or pd.Timestamp.max.tz_localize("UTC")) for n, _ in rows}
    rows.sort(key=lambda r: (-r[1], onset_key[r[0]], r[0]))
    if top_k is not None:
        rows = rows[:top_k]

    out = []
    for i, (n, score) in enumerate(rows, start=1):
        g = by_node[n]
        ev_rows = [r for r in g if r["moved"]] if n in anomalous else g[:1]
        evidence = tuple(evidence_from_row(r) for r in ev_rows[:MAX_EVIDENCE])
        out.append(
            Candidate(
                node=n,
                rank=i,
                score=float(score),
                anomalous=n in anomalous,
                strength=float(node_strength[n]),
                onset=anomalous.get(n),
                explains=prop.explains.get(n, ()),
                explained_by=prop.explained_by.get(n, ()),
                evidence=evidence,
            )
        )
    return out


def check_window(
    prepared_time: np.ndarray, start: pd.Timestamp, end: pd.Timestamp | None
) -> tuple[int, int | None]:
    """Start (and end) as ns, checked against the data: history must exist before start and data after it."""
    start_ns = int(start.value)
    t_min, t_max = int(prepared_time.min()), int(prepared_time.max())
    span = f"the data run from {iso_time(pd.Timestamp(t_min, tz='UTC'))} to {iso_time(pd.Timestamp(t_max, tz='UTC'))}"
    if start_ns <= t_min:
        raise RcaInputError(
            f"start {iso_time(start)} is at or before the first data point: there is no history to learn the "
            f"baseline from ({span}); give a start inside the data"
        )
    if start_ns > t_max:
        raise RcaInputError(
            f"start {iso_time(start)} is after the last data point: there is no incident to rank ({span})"
        )
    end_ns = None
    if end is not None:
        end_ns = int(end.value)
        if end_ns < start_ns:
            raise RcaInputError(f"end {iso_time(end)} is before start {iso_time(start)}")
    return start_ns, end_ns


def parse_duration(value: pd.Timedelta | str | None, *, name: str) -> int | None:
    """A duration such as "6h" or "30min" as ns (None stays None); RcaInputError when unreadable or negative."""
    if value is None:
        return None
    try:
        ns = int(pd.Timedelta(value).value)
    except (ValueError, TypeError):
        raise RcaInputError(f"{name} {value!r} is not a duration: write e.g. 6h, 30min or 2d") from None
    if ns < 0:
        raise RcaInputError(f"{name} {value!r} is negative: give a positive duration")
    return ns


def resolve_tolerance(tolerance: pd.Timedelta | str | None, step: pd.Timedelta) -> pd.Timedelta:
    """The given onset tolerance, or two sampling steps (onsets are only known to a step or two)."""
    if tolerance is None:
        return 2 * step
    return pd.Timedelta(parse_duration(tolerance, name="onset tolerance"), unit="ns")


def sampling_step(time_ns: np.ndarray, series: np.ndarray) -> pd.Timedelta:
    """The data's typical sampling step: the median spacing of consecutive points of a series."""
    same = series[1:] == series[:-1]
    steps = np.diff(time_ns)[same]
    return pd.Timedelta(int(np.median(steps)), unit="ns") if len(steps) else pd.Timedelta(0)


def lateness_factor(
    onset: pd.Timestamp | None,
    first: pd.Timestamp | None,
    step: pd.Timedelta | None,
    own_step: pd.Timedelta | None = None,
) -> float:
    """1 for the first node to move, 1/2 for one that moved LATENESS_STEPS sampling steps later, and so on.

    The step is the data's typical one, or the node's own when coarser: a daily batch metric is reported at
    the end of the run, so its onset says little about order at the scale of minutes.
    """
    if own_step is not None and (step is None or own_step > step):
        step = own_step
    if onset is None or first is None or step is None or step <= pd.Timedelta(0):
        return 1.0
    return 1.0 / (1.0 + max((onset - first) / (step * LATENESS_STEPS), 0.0))


def warn_unknown_nodes(edges: list[tuple[str, str]], known: set[str]) -> None:
    unknown = sorted({x for e in edges for x in e} - known)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        warnings.warn(
            f"graph names {len(unknown)} node(s) without metrics ({shown}): they link other nodes but "
            "cannot be candidates",
            RcaWarning,
            stacklevel=3,
        )


def rank(
    metrics: pd.DataFrame,
    graph_edges: pd.DataFrame | Iterable[tuple[str, str]] | None,
    start: Any,
    target: str | None = None,
    top_k: int | None = None,
    *,
    end: Any = None,
    baseline: pd.Timedelta | str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    onset_z: float = DEFAULT_ONSET_Z,
    persistence: int = DEFAULT_PERSISTENCE,
    onset_tolerance: pd.Timedelta | str | None = None,
    where: str = "row",
) -> list[Candidate]:
    """Rank the nodes of a service graph as root causes of the incident that began at ``start``.

    metrics: long format with columns time, node, metric, value (normal history, then the incident).
    graph_edges: DataFrame with columns source, target, or (source, target) pairs; "source depends on
        target", so a fault in the target can show in the source. None or empty: rank by anomaly only.
    start: when the incident began (ISO-8601 string, Timestamp, or epoch seconds); earlier points are history.
    target: restrict candidates to this node and everything it transitively depends on.
    top_k: return at most this many candidates.
    end: ignore points after this time. baseline: use only this much history before start (e.g. "6h").
    threshold: robust |z| from which a series counts as moved. persistence: points a move must last.
    onset_tolerance: how much later than a node a dependency may move and still explain it (default: two
        sampling steps, the typical spacing of the data's points, as onsets are only known to a step or two).

    Returns candidates best first; raises RcaInputError (a ValueError) on unusable input.
    """
    prepared = prepare_metrics(metrics, where=where)
    edges = prepare_edges(graph_edges)
    start_ts = parse_time(start, name="start")
    end_ts = parse_time(end, name="end") if end is not None else None
    start_ns, end_ns = check_window(prepared.time, start_ts, end_ts)
    baseline_ns = parse_duration(baseline, name="baseline")
    stats = series_stats(
        prepared,
        start_ns,
        end_ns=end_ns,
        baseline_ns=baseline_ns,
        threshold=threshold,
        onset_z=onset_z,
        persistence=persistence,
    )
    no_history = stats.loc[stats["n_history"] == 0]
    if len(no_history):
        warnings.warn(
            f"{len(no_history)} series have no history before start and were ignored "
            f"(e.g. {no_history['node'].iloc[0]}/{no_history['metric'].iloc[0]})",
            RcaWarning,
            stacklevel=2,
        )
    warn_unknown_nodes(edges, set(stats["node"]))
    step = sampling_step(prepared.time, prepared.series)
    return rank_series(
        stats,
        edges,
        target=target,
        top_k=top_k,
        threshold=threshold,
        tolerance=resolve_tolerance(onset_tolerance, step),
        step=step,
    )
