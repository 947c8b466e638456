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
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cms_dagster.domain.graph import dependency_closure, reach
from cms_dagster.rca.deviation import standardised_deviation
from cms_dagster.rca.findings import Candidate, Evidence, as_timedelta, as_timestamp, evidence_from_row
from cms_dagster.rca.residual import MIN_FIT_POINTS, residual_strength
from cms_dagster.rca.series import (
    DEFAULT_ONSET_Z,
    DEFAULT_PERSISTENCE,
    DEFAULT_THRESHOLD,
    MIN_SCALE_POINTS,
    pooled_short_strength,
    series_stats,
)
from cms_dagster.rca.validate import (
    PreparedMetrics,
    RcaInputError,
    RcaWarning,
    check_window,
    parse_duration,
    parse_time,
    prepare_edges,
    prepare_metrics,
    resolve_tolerance,
    sampling_step,
)

__all__ = [
    "Propagation",
    "anomaly_weight",
    "confidence",
    "first_anomalous_dependents",
    "lateness_factor",
    "propagate",
    "rank",
    "rank_by_deviation",
    "rank_series",
]

EXPLAINED_FLOOR = 0.05  # what is left of a node's score when a sure root among its dependencies explains it
LATENESS_STEPS = 10.0  # a node that moved this many sampling steps after the first anomalous one scores half
QUIET_FACTOR = 0.5  # a node whose series all stay under this x threshold blocks explanations through it
SURE_FACTOR = 5.0 / 3.0  # a node is surely anomalous from SURE_FACTOR x threshold (robust |z| 5 by default)
INFORMATIVE_FIT = 0.2  # R² from which a node's dependencies' history can judge a tie in onsets (residual.py)
MAX_EVIDENCE = 10
DEVIATION_METHOD = "standardised deviation"  # Candidate.method when the history was too short for the models
NO_SURE_MOVE_METHOD = "standardised deviation, no sure move"  # ... when no candidate moved surely
_NO_TIME = pd.Timedelta(0)


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
    strict: Container[str] = (),
    only: Mapping[str, Container[str]] | None = None,
    ties: Mapping[str, Container[str]] | None = None,
) -> Propagation:
    """Relate anomalous nodes through the dependency graph.

    ``anomalous`` maps each anomalous node to its onset. A dependency d explains a node n when d moved no
    later than n (+ tolerance) and a path leads from n to d that does not pass through a ``quiet`` node (one
    whose metrics show nothing: a fault would have shown there on its way up; nodes without metrics pass
    it on). Nodes in ``strict`` are explained only by dependencies that moved strictly before them (the
    generic ranking passes the nodes whose onset is the incident's first point, where time cannot order
    anything, and whose dependencies the regression of :mod:`cms_dagster.rca.residual` has already tested).
    A node in ``only`` can be explained only by the dependencies listed for it (:func:`departure_explainers`); the
    dependencies listed for a node in ``ties`` explain it at a tie too, even when it is in ``strict``.
    n's independence is
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
        for d in sorted(reach(adjacency, n, quiet)):
            if d not in anomalous or (only is not None and n in only and d not in only[n]):
                continue
            onset_d = anomalous[d] if anomalous[d] is not None else far_future
            tie = ties is not None and d in ties.get(n, ())
            if (onset_d < onset_n or (tie and onset_d <= onset_n)) if n in strict else onset_d <= onset_n + tolerance:
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


def first_anomalous_dependents(
    node: str, callers: Mapping[str, Iterable[str]], anomalous: Container[str]
) -> set[str]:
    """The anomalous nodes that depend on ``node``, each the first anomalous one on its path up the graph.

    ``callers`` maps a node to the nodes that depend on it directly. Nodes that are not anomalous (with or
    without metrics) are looked through, anomalous ones end the path: their own dependents are theirs to
    account for. This is the set CIRCA's descendant adjustment adds to a node's score.
    """
    found: set[str] = set()
    seen = {node}
    stack = list(callers.get(node, ()))
    while stack:
        nxt = stack.pop()
        if nxt in seen:
            continue
        seen.add(nxt)
        if nxt in anomalous:
            found.add(nxt)
        else:
            stack.extend(callers.get(nxt, ()))
    return found


def moved_signatures(moved: pd.DataFrame) -> dict[str, dict[tuple[str, bool], float]]:
    """Per node, its moved series as (metric name, moved up) -> strength (the strongest when two series share a
    name and direction)."""
    out: dict[str, dict[tuple[str, bool], float]] = {}
    for node, metric, z, strength in zip(
        moved["node"], moved["metric"], moved["z"], moved["strength"], strict=True
    ):
        sig = out.setdefault(str(node), {})
        key = (str(metric), bool(z > 0))
        sig[key] = max(sig.get(key, 0.0), float(strength))
    return out


def departure_explainers(
    moved: pd.DataFrame, candidates: Mapping[str, Iterable[str]]
) -> dict[str, set[str]]:
    """For each node whose moves are all first departures, which of its ``candidates`` can account for them.

    ``moved``: the moved series (``series_stats`` rows). A first departure is a move of a series that held one
    value through a history of at least MIN_SCALE_POINTS points (an availability at 100 %, an error count at 0).
    No regression can be fitted to such a series, but its history still says what its dependencies did not do:
    while it held its value they ranged over their own history, so a dependency whose move stays within that range
    is something the history saw without a departure. Only a dependency that departed the same way (the same
    metric name in the same direction, as :func:`best_explainers` matches) or one with a move beyond its own
    history's range (its strongest window's median outside the history's minimum and maximum) can account for
    the departure. Nodes with any other kind of move are left out (the regression, the metric rule and the onsets
    judge them).
    """
    departed = (moved["n_history"] >= MIN_SCALE_POINTS) & (moved["history_min"] == moved["history_max"])
    nodes = moved["node"].astype(str)
    only_departures = set(departed.groupby(nodes).all().loc[lambda x: x].index)
    beyond = set(nodes[(moved["observed"] > moved["history_max"]) | (moved["observed"] < moved["history_min"])])
    signatures = moved_signatures(moved)
    departures = moved_signatures(moved[departed])
    out: dict[str, set[str]] = {}
    for c in only_departures & set(candidates):
        own = set(departures.get(c, {}))
        names = [d for d in candidates[c] if d != c]
        out[c] = {d for d in names if d in beyond or own & set(signatures.get(d, {}))}
    return out


def best_explainers(
    lenders: Mapping[str, Iterable[str]],
    signatures: Mapping[str, Mapping[tuple[str, bool], float]],
    departures: Mapping[str, Mapping[tuple[str, bool], float]] | None = None,
) -> dict[str, set[str]]:
    """For each anomalous dependent, the anomalous nodes below it that best explain its move.

    ``lenders`` maps each anomalous node to its first anomalous dependents (:func:`first_anomalous_dependents`);
    ``signatures`` each node's moved series (:func:`moved_signatures`); ``departures`` (default: the same) the
    moves of a dependent that are to be explained. A fault travels up the call graph on the same kind of metric
    (CIRCA's structural graph: a callee's latency feeds its caller's latency, its errors the caller's errors),
    so a node below a dependent explains the part of those moves (log(1 + strength) of each series) that moved in
    the node too, by the same metric name in the same direction. Only the nodes that explain the largest part
    are the dependent's explainers; when none explains any part (no such moves, no shared metric names), all of
    them are.
    """
    if departures is None:
        departures = signatures
    below: dict[str, list[str]] = {}
    for n, dependents in lenders.items():
        for c in dependents:
            below.setdefault(c, []).append(n)
    out: dict[str, set[str]] = {}
    for c, nodes in below.items():
        own = departures.get(c, {})
        total = sum(math.log1p(v) for v in own.values())
        part = {
            n: sum(math.log1p(v) for k, v in own.items() if k in signatures.get(n, {})) / total if total > 0 else 0.0
            for n in nodes
        }
        best = max(part.values())
        out[c] = {n for n, p in part.items() if p >= best - 1e-9}
    return out


def rank_series(
    stats: pd.DataFrame,
    edges: list[tuple[str, str]],
    *,
    target: str | None = None,
    top_k: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    tolerance: pd.Timedelta = _NO_TIME,
    step: pd.Timedelta | None = None,
    start: pd.Timestamp | None = None,
) -> list[Candidate]:
    """Rank nodes from per-series statistics (the output of ``series_stats``) and the dependency edges.

    ``tolerance``: how much later a dependency may move and still explain a node. ``step``: the data's
    typical sampling step; a node that moved LATENESS_STEPS steps after the first anomalous node scores half.
    With ``residual`` and ``explained_share`` columns (see :func:`rank`) a node scores what its dependencies
    leave unexplained, and one whose onset is the incident's first point (``start``) is not explained away by a
    dependency that moved at the same point when its dependencies predicted at least INFORMATIVE_FIT of its
    history's variance (at that point time says nothing of order, and the regression has judged the tie), nor
    when its history is too short for any fit (MIN_FIT_POINTS): nothing says which of the two came first.
    An anomalous node's score also gains what its first anomalous dependents lend it (CIRCA's descendant
    adjustment, see :func:`first_anomalous_dependents`): the part of their move their own dependencies'
    history explains, all of it for those without an informative fit. A dependent lends only to the nodes below
    it that moved the way its unfitted series did (:func:`best_explainers`), to all of them when none did.
    """
    check_target(target, set(stats["node"]), edges)
    usable = stats[stats["n_history"] > 0]
    order = usable.sort_values(["node", "strength"], ascending=[True, False], kind="stable")
    node_strength = order.groupby("node", sort=True)["strength"].max()
    # what the node's dependencies leave unexplained (rank: regression on their series), else its own strength
    fitted: set[str] = set()
    node_cause = node_strength
    if "residual" in order.columns:
        informative = order["residual"].notna() & (order["explained_share"] >= INFORMATIVE_FIT)
        fitted = set(order.loc[informative & order["moved"], "node"])
        # nodes whose history is too short for any fit: nothing can judge a tie in time for them either
        longest = order.groupby("node", sort=True)["n_history"].max()
        fitted |= set(longest.index[longest < MIN_FIT_POINTS])
        own = order["residual"].fillna(order["strength"])
        node_cause = own.groupby(order["node"], sort=True).max()
    moved = order[order["moved"]]
    node_onset = moved.groupby("node", sort=True)["moved_at"].min()
    node_step = moved.groupby("node", sort=True)["step"].max()

    anomalous = {
        n: as_timestamp(node_onset.get(n)) for n in node_strength.index if node_strength[n] >= threshold
    }
    plaus = {n: confidence(float(node_strength[n]), threshold) for n in anomalous}
    quiet = {n for n, a in node_strength.items() if a < QUIET_FACTOR * threshold}
    censored = set()
    if start is not None:
        for n in fitted & set(anomalous):
            own_step = as_timedelta(node_step.get(n)) or step or _NO_TIME
            if anomalous[n] is not None and anomalous[n] < start + max(own_step, step or _NO_TIME):
                censored.add(n)
    # a node whose moves are all first departures is explained only by a dependency that departed the same way or
    # moved beyond its own history's range (departure_explainers): the history saw the others' usual range
    only = departure_explainers(moved, {n: anomalous for n in anomalous})
    # moves no regression judged (a first departure has no variance to fit, a fit may say nothing): when a tie at the
    # first point rests on one (the node's strongest move), the regression did not judge it, and a dependency that
    # moved the same way (metric name and direction, as for lending) explains it as it does a node without a fit
    unjudged = moved["n_history"] >= MIN_SCALE_POINTS
    if "residual" in moved.columns:
        unjudged &= moved["residual"].isna() | ~(moved["explained_share"] >= INFORMATIVE_FIT)
    unjudged_moves = moved_signatures(moved[unjudged])
    all_moves = moved_signatures(moved)
    leads = order.groupby("node", sort=True).head(1).set_index("node")
    ties = {}
    for n in censored & set(unjudged_moves):
        lead = leads.loc[n]
        judged = "residual" in leads.columns and pd.notna(lead["residual"]) and lead["explained_share"] >= INFORMATIVE_FIT
        if lead["n_history"] >= MIN_SCALE_POINTS and not judged:
            own = set(unjudged_moves[n])
            ties[n] = {d for d, sig in all_moves.items() if d != n and own & set(sig)}
    prop = propagate(
        anomalous, plaus, edges, tolerance=tolerance, quiet=quiet, strict=censored, only=only, ties=ties
    )

    allowed = dependency_closure(edges, target) if target is not None else None
    callers: dict[str, list[str]] = {}
    for source, dep in edges:
        callers.setdefault(dep, []).append(source)
    by_node: dict[str, list[dict[str, Any]]] = {}
    for r in order.to_dict("records"):
        by_node.setdefault(r["node"], []).append(r)  # strongest series first
    # what an anomalous dependent lends to the nodes it depends on: the part of its move that its dependencies'
    # history explains (log1p(strength) - log1p(residual)) when the regression was informative, all of it when
    # nothing was fitted (nothing says its dependencies could not have caused it)
    strongest = order.groupby("node", sort=True).head(1).set_index("node")
    credit = {}
    for c in anomalous:
        lead = strongest.loc[c]
        explained = "residual" in strongest.columns and bool(
            pd.notna(lead["residual"]) and lead["explained_share"] >= INFORMATIVE_FIT
        )
        unexplained = math.log1p(float(lead["residual"])) if explained else 0.0
        credit[c] = math.log1p(float(lead["strength"])) - unexplained
    lenders = {n: first_anomalous_dependents(n, callers, anomalous) for n in anomalous}
    # a dependent's moves that no regression judged (an availability that never left 100 % has no variance to fit,
    # a fit may say nothing): which dependency it lends to is left to the metric it moved on (best_explainers)
    lends_to = best_explainers(lenders, all_moves, unjudged_moves)
    # ... and a dependent whose moves are all first departures lends only to the nodes below it that can account for
    # them (of those, best_explainers keeps the ones that departed the same way), to none when none can
    below: dict[str, set[str]] = {}
    for n, dependents in lenders.items():
        for c in dependents:
            below.setdefault(c, set()).add(n)
    for c, accountable in departure_explainers(moved, below).items():
        lends_to[c] &= accountable
    rows = []
    first = min((t for t in anomalous.values() if t is not None), default=None)
    for n, a in node_strength.items():
        if allowed is not None and n not in allowed:
            continue
        cause = float(node_cause[n])
        base = math.log1p(cause)
        if n in anomalous:
            # descendant adjustment (CIRCA): what the node's anomaly can account for among its dependents
            adjusted = base + sum(credit[c] for c in lenders[n] if n in lends_to[c])
            score = adjusted * prop.independence[n] * anomaly_weight(cause, threshold)
            score *= lateness_factor(anomalous[n], first, step, as_timedelta(node_step.get(n)))
        else:
            score = EXPLAINED_FLOOR**2 * math.log1p(float(a))
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


def check_target(target: str | None, known: set[str], edges: list[tuple[str, str]]) -> None:
    """RcaInputError when ``target`` names neither a node with metrics nor one of the graph."""
    if target is not None and target not in known and target not in {x for e in edges for x in e}:
        raise RcaInputError(
            f"target {target!r} is neither in the metrics nor in the graph: name one of the nodes "
            f"(e.g. {', '.join(sorted(known)[:5])})"
        )


def short_history(stats: pd.DataFrame) -> int | None:
    """The typical number of history points (the median over series with any) when it is under
    MIN_SCALE_POINTS, so that no series can have a scale, a regression or a change point of its own; else None."""
    counts = stats.loc[stats["n_history"] > 0, "n_history"]
    if len(counts) == 0:
        return None
    typical = int(np.median(counts))
    return typical if typical < MIN_SCALE_POINTS else None


def rank_by_deviation(
    deviation: pd.DataFrame,
    edges: list[tuple[str, str]],
    *,
    target: str | None = None,
    top_k: int | None = None,
    method: str = DEVIATION_METHOD,
) -> list[Candidate]:
    """Candidates by their strongest series' standardised deviation (:mod:`cms_dagster.rca.deviation`), ties by
    name; with ``target``, only it and what it depends on. The graph is not used otherwise, and no node is called
    anomalous: on so short a history, or when no candidate moved surely, nothing tells a move from noise (the
    deviation is in the evidence). ``method`` is what the candidates say they were ranked by."""
    allowed = dependency_closure(edges, target) if target is not None else None
    best = deviation.sort_values(["z", "node", "metric"], ascending=[False, True, True], kind="stable")
    best = best.drop_duplicates("node")
    if allowed is not None:
        best = best[best["node"].isin(allowed)]
    if top_k is not None:
        best = best.head(top_k)
    out = []
    for i, r in enumerate(best.to_dict("records"), start=1):
        evidence = Evidence(
            node=str(r["node"]),
            metric=str(r["metric"]),
            moved_at=None,
            peak_at=pd.Timestamp(int(r["time"]), unit="ns", tz="UTC"),
            baseline=float(r["mean"]),
            observed=float(r["value"]),
            z=float(r["signed_z"]),
            direction="up" if r["signed_z"] >= 0 else "down",
        )
        out.append(
            Candidate(
                node=str(r["node"]),
                rank=i,
                score=float(r["z"]),
                anomalous=False,
                strength=float(r["z"]),
                onset=None,
                evidence=(evidence,),
                method=method,
            )
        )
    return out


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


def apply_pooled_strength(
    stats: pd.DataFrame, pooled: np.ndarray, threshold: float, start: pd.Timestamp
) -> None:
    """Put the pooled strength of short-history series (:func:`pooled_short_strength`) into ``stats``, in place:
    strength, signed z, whether it moved, and an onset at ``start`` for those that now moved."""
    use = ~np.isnan(pooled)
    if not use.any():
        return
    strength = stats["strength"].to_numpy(dtype=float).copy()
    z = stats["z"].to_numpy(dtype=float).copy()
    strength[use] = pooled[use]
    z[use] = np.where(z[use] < 0, -pooled[use], pooled[use])
    moved = strength >= threshold
    onset = stats["moved_at"].copy()
    onset[use & moved & onset.isna().to_numpy()] = start
    onset[~moved] = pd.NaT
    stats["strength"], stats["z"], stats["moved"], stats["moved_at"] = strength, z, moved, onset


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


@dataclass(frozen=True)
class IncidentStats:
    """One incident's validated input and the statistics of its series (:func:`series_stats`)."""

    prepared: PreparedMetrics
    edges: list[tuple[str, str]]
    start: pd.Timestamp
    start_ns: int
    end_ns: int | None
    baseline_ns: int | None
    stats: pd.DataFrame


def incident_stats(
    metrics: pd.DataFrame,
    graph_edges: pd.DataFrame | Iterable[tuple[str, str]] | None,
    start: Any,
    *,
    end: Any,
    baseline: pd.Timedelta | str | None,
    threshold: float,
    onset_z: float,
    persistence: int,
    node_column: str = "node",
    where: str = "row",
    first_departure: bool = False,
) -> IncidentStats:
    """Check the metrics, graph and window of an incident (RcaInputError on unusable input) and score every
    series against its history; warns (RcaWarning, at the ranking's caller) about series without history."""
    prepared = prepare_metrics(metrics, node_column=node_column, where=where)
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
        first_departure=first_departure,
    )
    no_history = stats.loc[stats["n_history"] == 0]
    if len(no_history):
        warnings.warn(
            f"{len(no_history)} series have no history before start and were ignored "
            f"(e.g. {no_history['node'].iloc[0]}/{no_history['metric'].iloc[0]})",
            RcaWarning,
            stacklevel=3,
        )
    return IncidentStats(prepared, edges, start_ts, start_ns, end_ns, baseline_ns, stats)


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

    When the typical series has fewer than MIN_SCALE_POINTS points before ``start``, nothing above can be fitted:
    the candidates are then ranked by standardised deviation (:func:`rank_by_deviation`, ``method`` says so) with
    an RcaWarning. So are they, with ``method`` NO_SURE_MOVE_METHOD, when no candidate's strongest series reaches
    the sure level (SURE_FACTOR x threshold): the graph would only order doubtful moves.

    Returns candidates best first; raises RcaInputError (a ValueError) on unusable input.
    """
    inc = incident_stats(
        metrics,
        graph_edges,
        start,
        end=end,
        baseline=baseline,
        threshold=threshold,
        onset_z=onset_z,
        persistence=persistence,
        where=where,
        first_departure=True,
    )
    prepared, edges, stats = inc.prepared, inc.edges, inc.stats
    warn_unknown_nodes(edges, set(stats["node"]))
    check_target(target, set(stats["node"]), edges)

    def by_deviation(why: str, method: str) -> list[Candidate]:
        warnings.warn(
            f"{why}: candidates are ranked by standardised deviation (largest |x - mean| / sd over the incident, "
            "the max-|z| baseline), not by the graph",
            RcaWarning,
            stacklevel=3,  # rank's caller
        )
        deviation = standardised_deviation(prepared, inc.start_ns, end_ns=inc.end_ns, baseline_ns=inc.baseline_ns)
        return rank_by_deviation(deviation, edges, target=target, top_k=top_k, method=method)

    typical = short_history(stats)
    if typical is not None:
        return by_deviation(
            f"the history before start is too short for the ranking's models ({typical} point(s) per series, "
            f"under {MIN_SCALE_POINTS})",
            DEVIATION_METHOD,
        )
    apply_pooled_strength(
        stats,
        pooled_short_strength(
            prepared, stats, inc.start_ns, end_ns=inc.end_ns, baseline_ns=inc.baseline_ns, persistence=persistence
        ),
        threshold,
        inc.start,
    )
    stats["residual"], stats["explained_share"] = residual_strength(
        prepared, stats, edges, inc.start_ns, end_ns=inc.end_ns, baseline_ns=inc.baseline_ns, persistence=persistence
    )
    step = sampling_step(prepared.time, prepared.series)
    ranked = rank_series(
        stats,
        edges,
        target=target,
        threshold=threshold,
        tolerance=resolve_tolerance(onset_tolerance, step),
        step=step,
        start=inc.start,
    )
    strongest = max((c.strength for c in ranked), default=None)
    if strongest is not None and strongest < SURE_FACTOR * threshold:
        # no candidate moved surely: the graph's rules (who explains whom, what callers lend) would only order
        # doubtful moves, so rank as on a too-short history, and say so
        return by_deviation(
            f"no candidate moved surely (largest sustained robust |z| {strongest:.1f}, under {SURE_FACTOR * threshold:g})",
            NO_SURE_MOVE_METHOD,
        )
    return ranked[:top_k] if top_k is not None else ranked
