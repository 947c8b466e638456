"""Domain-aware root-cause ranking: which entity, with which incident kind, and the evidence for it.

Input: the entity dependency graph (``Ontology.dependency_edges()`` builds it from the estate) and long
series ``time, entity, metric, value`` named as the warehouse names them (see
:mod:`cms_dagster.rca.signatures`). Output: ranked (entity, kind) hypotheses.

Each entity's series are scored against their history by the generic engine; each incident kind has a
signature (what is seen on its root-cause entity) that gives a match in [0, 1]; the graph then discounts
entities whose anomalies an anomalous dependency explains and rewards entities that explain many anomalous
dependents. See cms_dagster/rca/README.md.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cms_dagster.domain.graph import dependency_closure, related_nodes
from cms_dagster.rca.engine import (
    EXPLAINED_FLOOR,
    QUIET_FACTOR,
    anomaly_weight,
    confidence,
    incident_stats,
    lateness_factor,
    propagate,
)
from cms_dagster.rca.findings import Evidence, as_timedelta, as_timestamp, evidence_from_row, iso_time
from cms_dagster.rca.series import (
    CONSTANT_Z,
    DEFAULT_ONSET_Z,
    DEFAULT_PERSISTENCE,
    DEFAULT_THRESHOLD,
    MIN_SCALE_POINTS,
    series_stats,
    window_masks,
)
from cms_dagster.rca.signatures import ROOT_TYPES, SIGNATURES, Match, Signals, canonical_metric, entity_type
from cms_dagster.rca.validate import (
    PreparedMetrics,
    RcaInputError,
    RcaWarning,
    resolve_tolerance,
    sampling_step,
)

__all__ = ["UNKNOWN", "Hypothesis", "rank_incident"]

UNKNOWN = "unknown"  # an anomalous entity whose signals match none of the kinds
UNKNOWN_MATCH = 0.25
# an anomalous entity that fits no kind explains its dependents a quarter as surely as one that does (a
# fault of no known kind is possible, but a busy database is more often a bystander than a cause) ...
EXPLAINER_FLOOR = 0.25
# ... and a tenth when no kind can start at its type at all (queues, functions, jobs): it moved, most
# likely as an effect
NON_ROOT_EXPLAINER = 0.1
# Beyond this sustained robust |z| a series has moved as surely as it can: a larger z (a near-constant
# history, a spread of 1e-17) says little more about which entity is the cause, so scores grow only
# slowly past it (CAP_SLOPE per e-fold), enough to order two sure moves but not to outweigh the signatures
STRENGTH_CAP = 20.0
CAP_SLOPE = 0.1
COVERAGE_WEIGHT = 1.0
CLUSTER_DISCOUNT = 0.5  # capacity on a whole cluster ranks below a namespace showing it itself


# --- ranking ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hypothesis:
    """A ranked (root-cause entity, incident kind) pair with its score and supporting evidence."""

    entity: str
    kind: str  # one of KINDS, or "unknown"
    rank: int
    score: float
    match: float  # how well the entity's signals fit the kind's signature, 0..1
    onset: pd.Timestamp | None
    reason: str
    explains: tuple[str, ...] = ()
    explained_by: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "entity": self.entity,
            "kind": self.kind,
            "score": round(self.score, 6),
            "match": round(self.match, 4),
            "onset": iso_time(self.onset),
            "reason": self.reason,
            "explains": list(self.explains),
            "explained_by": list(self.explained_by),
            "evidence": [e.to_dict() for e in self.evidence],
        }


def _strength_term(strength: float) -> float:
    """log(1 + |z|), growing only CAP_SLOPE per e-fold past STRENGTH_CAP."""
    if strength <= STRENGTH_CAP:
        return math.log1p(max(strength, 0.0))
    return math.log1p(STRENGTH_CAP) + CAP_SLOPE * math.log(strength / STRENGTH_CAP)


def _first_related_onset(
    anomalous: Mapping[str, pd.Timestamp | None],
    edges: Iterable[tuple[str, str]],
    steps: Mapping[str, pd.Timedelta | None],
) -> dict[str, tuple[pd.Timestamp | None, pd.Timedelta | None]]:
    """Per anomalous entity: the earliest onset among it and the anomalous entities it is connected to
    (what it depends on and what depends on it, transitively), with that entity's sampling step. Lateness
    is judged against these only: an unrelated series that happened to move first (there is always one in
    a large estate) says nothing about whether this entity led or followed its incident. The step comes
    along because an onset is only known to its series' step: a daily run's row says little about the
    minute its trouble began."""
    near = related_nodes(edges)
    out: dict[str, tuple[pd.Timestamp | None, pd.Timedelta | None]] = {}
    for entity in anomalous:
        related = near.get(entity, {entity})
        times = sorted((anomalous[x], x) for x in related if x in anomalous and anomalous[x] is not None)
        out[entity] = (times[0][0], steps.get(times[0][1])) if times else (None, None)
    return out


def _before_start(
    prepared: PreparedMetrics,
    start_ns: int,
    baseline_ns: int | None,
    *,
    typical: int,
    threshold: float,
    onset_z: float,
    persistence: int,
) -> pd.DataFrame:
    """The series' statistics over the second half of their history, [start - lead, start), against the first
    half: what was already moving when the analysis began. ``lead`` is half the history of the series sampled
    at the data's typical step (``typical``, ns: 3 h of the 6 h the warehouse path reads for minute series;
    its run series, a week of one point per run, are too coarse for a climb within hours). Only series with
    MIN_SCALE_POINTS points on each side are kept."""
    t, s = prepared.time, prepared.series
    before = t < start_ns
    if baseline_ns is not None:
        before &= t >= start_ns - baseline_ns
    if not before.any():
        return pd.DataFrame()
    same = s[1:] == s[:-1]
    spacing = pd.Series(np.diff(t)[same]).groupby(s[1:][same]).median()
    fine = spacing.index[spacing.to_numpy() <= 2 * typical].to_numpy()
    chosen = before & np.isin(s, fine)
    if typical <= 0 or not chosen.any():
        return pd.DataFrame()
    first = pd.Series(t[chosen]).groupby(s[chosen]).min().to_numpy()
    lead = int((start_ns - float(np.median(first))) / 2)
    if lead <= 0:
        return pd.DataFrame()
    early = series_stats(
        prepared,
        start_ns - lead,
        end_ns=start_ns - 1,
        baseline_ns=baseline_ns,
        threshold=threshold,
        onset_z=onset_z,
        persistence=persistence,
    )
    keep = (early["n_history"] >= MIN_SCALE_POINTS) & (
        early["n_incident"] >= max(persistence, MIN_SCALE_POINTS)
    )
    # where the view begins: an onset there may be later than the move's real beginning (it began earlier)
    return early[keep].assign(view_from=pd.Timestamp(start_ns - lead, tz="UTC"))


def _failure_surprise(
    stats: pd.DataFrame,
    prepared: PreparedMetrics,
    start_ns: int,
    end_ns: int | None,
    baseline_ns: int | None,
    threshold: float,
) -> pd.DataFrame:
    """A stage's failures after start judged as a rate over its history, not as a z against its spread.

    The ``failed`` flag of a stage is 0 or 1 per attempt (a run that retries has one row per attempt). A history with one failed run in it
    has a spread (its farthest value, §1's EXTREME_Z rule), so a failure now is no move (robust z 1.9 after one
    failed run of three attempts in a week) and the stage that broke the job ranks behind whatever load moved
    beside it. A failure is news unless failures are usual for the stage: while fewer than half of its history's
    attempts failed, the incident's m failed attempts of M score their surprise under the history's failure rate
    r = (k + 1) / (n + 2) (k failed of n, Laplace's rule), P = P(Binomial(M, r) >= m), as z = 1 / P - 1 (the
    ranking scores log(1 + z) = -log P, the information-theoretic score of §1), capped at CONSTANT_Z like a first
    failure. Only raises a strength, never lowers one."""
    # stats' index is the series index of ``prepared`` (one row per series, in series_stats' order)
    keys = stats.index[
        (stats["canonical"] == "failed")
        & np.array([entity_type(e) in ROOT_TYPES["job_failure"] for e in stats["node"]], dtype=bool)
    ]
    if not len(keys):
        return stats
    t, v, s = prepared.time, prepared.value, prepared.series
    hist, inc = window_masks(t, start_ns, end_ns=end_ns, baseline_ns=baseline_ns)
    width = len(prepared.series_node)
    failed = v >= 0.5
    k_hist = np.bincount(s[hist & failed], minlength=width)
    n_hist = np.bincount(s[hist], minlength=width)
    m_inc = np.bincount(s[inc & failed], minlength=width)
    n_inc = np.bincount(s[inc], minlength=width)
    stats = stats.copy()
    for i in keys:
        k, n, m, big_m = int(k_hist[i]), int(n_hist[i]), int(m_inc[i]), int(n_inc[i])
        if m == 0 or n == 0 or 2 * k >= n:
            continue  # no failure now, or failures are usual for this stage
        r = (k + 1) / (n + 2)
        tail = sum(math.comb(big_m, j) * r**j * (1 - r) ** (big_m - j) for j in range(m, big_m + 1))
        z = min(CONSTANT_Z, 1.0 / max(tail, 1e-300) - 1.0)
        if z <= float(stats.at[i, "strength"]):
            continue
        rows = np.flatnonzero((s == i) & inc & failed)
        at = pd.Timestamp(int(t[rows[0]]), tz="UTC")
        stats.loc[i, ["z", "strength", "observed"]] = [z, z, 1.0]
        stats.at[i, "direction"] = "up"
        stats.at[i, "moved"] = z >= threshold
        stats.at[i, "moved_at"] = at if z >= threshold else pd.NaT
        stats.at[i, "peak_at"] = at
    return stats


def rank_incident(
    metrics: pd.DataFrame,
    graph_edges: pd.DataFrame | Iterable[tuple[str, str]] | None,
    start: Any,
    target: str | None = None,
    top_k: int | None = None,
    *,
    end: Any = None,
    baseline: pd.Timedelta | str | None = None,
    max_connections: Mapping[str, float] | None = None,
    staleness_sla: Mapping[str, float] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    onset_z: float = DEFAULT_ONSET_Z,
    persistence: int = DEFAULT_PERSISTENCE,
    onset_tolerance: pd.Timedelta | str | None = None,
    where: str = "row",
) -> list[Hypothesis]:
    """Rank (entity, kind) root-cause hypotheses for the incident that began at ``start``.

    metrics: long format time, entity, metric, value (a ``node`` column is accepted for ``entity``).
    graph_edges: entity dependency edges (source depends on target), e.g. ``ontology.dependency_edges()``.
    target: restrict to this entity (e.g. the job that breached its SLA) and what it depends on.
    max_connections: per rds entity, to judge DatabaseConnections when no ``conn_ratio`` series is given
        (a ``MaxConnections`` series on the entity works too).
    staleness_sla: per feed entity, seconds after which its data counts as delayed (the ontology's
        ``staleness_sla_s``): delayed_market_data then needs staleness past half of it.
    Other arguments as in :func:`cms_dagster.rca.engine.rank`. Raises RcaInputError on unusable input.
    """
    if isinstance(metrics, pd.DataFrame) and "entity" not in metrics.columns and "node" in metrics.columns:
        metrics = metrics.rename(columns={"node": "entity"})
    inc = incident_stats(
        metrics,
        graph_edges,
        start,
        end=end,
        baseline=baseline,
        threshold=threshold,
        onset_z=onset_z,
        persistence=persistence,
        node_column="entity",
        where=where,
    )
    prepared, edges, stats = inc.prepared, inc.edges, inc.stats
    stats = stats[stats["n_history"] > 0].copy()
    stats["canonical"] = [canonical_metric(m) for m in stats["metric"]]
    stats = _failure_surprise(stats, prepared, inc.start_ns, inc.end_ns, inc.baseline_ns, threshold)
    stats = stats.sort_values(["node", "strength"], ascending=[True, False], kind="stable")
    known = set(stats["node"])
    graph_nodes = {x for e in edges for x in e}
    if target is not None and target not in known and target not in graph_nodes:
        raise RcaInputError(
            f"target {target!r} is neither in the metrics nor in the graph: name an entity id such as "
            f"{', '.join(sorted(known)[:3])}"
        )

    rows_by_entity: dict[str, list[dict[str, Any]]] = {}
    for r in stats.to_dict("records"):
        rows_by_entity.setdefault(r["node"], []).append(r)  # strongest series first
    signals: dict[str, Signals] = {}
    for entity, rows in rows_by_entity.items():
        records: dict[str, dict[str, Any]] = {}
        for r in rows:
            records.setdefault(r["canonical"], r)  # the strongest if two names map to one
        signals[entity] = Signals(records, threshold)
    before_rows: dict[str, dict[str, dict[str, Any]]] = {}
    step = sampling_step(prepared.time, prepared.series)  # the data's typical step (also the onset tolerance's)
    early = _before_start(
        prepared,
        inc.start_ns,
        inc.baseline_ns,
        typical=step.value,
        threshold=threshold,
        onset_z=onset_z,
        persistence=persistence,
    )
    if len(early):
        early = early.assign(canonical=[canonical_metric(m) for m in early["metric"]])
        early = early.sort_values(["node", "strength"], ascending=[True, False], kind="stable")
        for r in early.to_dict("records"):
            before_rows.setdefault(r["node"], {}).setdefault(r["canonical"], r)
    strength = {e: float(rows[0]["strength"]) for e, rows in rows_by_entity.items()}
    moved = stats[stats["moved"]].groupby("node", sort=True)
    onset = {e: as_timestamp(t) for e, t in moved["moved_at"].min().items()}
    own_step = {e: as_timedelta(t) for e, t in moved["step"].max().items()}
    anomalous = {e: onset.get(e) for e, a in strength.items() if a >= threshold}

    # namespaces belong to their cluster: the cluster's evidence supports the namespace's capacity signature
    # and does not explain the namespace away (the root-cause entity of capacity_constraint is the namespace)
    cluster_of = {
        s: t for s, t in edges if entity_type(s) == "eks_namespace" and entity_type(t) == "eks_cluster"
    }
    prop_edges = [(s, t) for s, t in edges if cluster_of.get(s) != t]
    maxconn = dict(max_connections or {})

    hypotheses: list[tuple[str, str, Match]] = []
    best_match: dict[str, float] = {}
    for entity, sig in signals.items():
        etype = entity_type(entity)
        ctx: dict[str, Any] = {
            "max_connections": maxconn.get(entity),
            "staleness_sla": (staleness_sla or {}).get(entity),
        }
        if ctx["max_connections"] is None and sig.get("MaxConnections") is not None:
            ctx["max_connections"] = float(sig.get("MaxConnections")["incident_last"])
        if entity in cluster_of and cluster_of[entity] in signals:
            ctx["cluster"] = signals[cluster_of[entity]]
        if entity in before_rows:
            ctx["before"] = Signals(before_rows[entity], threshold)
        best = 0.0
        for kind, fn in SIGNATURES.items():
            if etype not in ROOT_TYPES[kind]:
                continue
            m = fn(sig, ctx)
            best = max(best, m.match)
            if etype == "eks_cluster":
                m = Match(m.match * CLUSTER_DISCOUNT, m.metrics, m.reason + " (cluster-wide)")
            if m.match > 0:
                hypotheses.append((entity, kind, m))
        if entity in anomalous and best < 0.5:
            # fades as a known kind fits better, so a weak but real fit still ranks above "unknown"
            unknown = UNKNOWN_MATCH * (1.0 - best)
            hypotheses.append(
                (entity, UNKNOWN, Match(unknown, (), "anomalous, but no incident kind's signature fits"))
            )
        can_be_root = any(etype in types for types in ROOT_TYPES.values())
        best_match[entity] = max(best, EXPLAINER_FLOOR if can_be_root else NON_ROOT_EXPLAINER)

    # a kind whose evidence is the climb before start (a leak that began before the incident's first alarm):
    # the entity moved then, as surely as that climb says, whatever its series do after start
    for entity, _kind, m in hypotheses:
        if not m.before:
            continue
        key = [before_rows[entity][name] for name in m.metrics if name in before_rows[entity]]
        moved_key = [r for r in key if r["moved"]]
        if not moved_key:
            continue
        strength[entity] = max(strength[entity], max(float(r["strength"]) for r in moved_key))
        began = min(as_timestamp(r["moved_at"]) for r in moved_key)
        onset[entity] = began if onset.get(entity) is None else min(onset[entity], began)
        anomalous[entity] = onset[entity]
        own_step.setdefault(entity, max(as_timedelta(r["step"]) for r in moved_key))

    plausibility = {e: confidence(strength[e], threshold) * best_match[e] for e in anomalous}
    tolerance = resolve_tolerance(onset_tolerance, step)
    quiet = {e for e, a in strength.items() if a < QUIET_FACTOR * threshold}
    prop = propagate(anomalous, plausibility, prop_edges, tolerance=tolerance, quiet=quiet)
    first = _first_related_onset(anomalous, edges, own_step)
    allowed = dependency_closure(edges, target) if target is not None else None

    scored = []
    for entity, kind, m in hypotheses:
        if allowed is not None and entity not in allowed:
            continue
        rows = list(before_rows[entity].values()) if m.before else rows_by_entity[entity]
        key = [r for r in rows if r["canonical"] in m.metrics] if m.metrics else list(rows)
        if kind == "capacity_constraint" and cluster_of.get(entity) in rows_by_entity:
            key += [
                r for r in rows_by_entity[cluster_of[entity]] if r["canonical"] in m.metrics and r["moved"]
            ]
        key_strength = max((float(r["strength"]) for r in key), default=0.0)
        base = _strength_term(key_strength)
        if entity in anomalous:
            # explaining the anomalies of its dependents counts as far as this hypothesis is a plausible
            # cause of them: fully for a kind that fits, a quarter for an anomaly no kind fits
            explainer = best_match[entity] if kind == UNKNOWN else m.match
            coverage = 1.0 + COVERAGE_WEIGHT * prop.coverage[entity] * explainer
            score = m.match * base * prop.independence[entity] * coverage
            first_at, first_step = first.get(entity, (None, None))
            coarse = max((x for x in (step, first_step) if x is not None), default=None)
            score *= lateness_factor(onset.get(entity), first_at, coarse, own_step.get(entity))
            score *= anomaly_weight(strength[entity], threshold)
        else:
            score = EXPLAINED_FLOOR**2 * m.match * base
        shown = [r for r in key if r["moved"]] or key[:1]
        if kind != UNKNOWN:
            order = {name: i for i, name in enumerate(m.metrics)}
            shown.sort(key=lambda r: (order.get(r["canonical"], 99), -float(r["strength"])))
        evidence = tuple(evidence_from_row(r) for r in shown[:8])
        scored.append((entity, kind, m, score, evidence))

    far = pd.Timestamp.max.tz_localize("UTC")
    scored.sort(key=lambda x: (-x[3], onset.get(x[0]) or far, x[0], x[1]))
    if top_k is not None:
        scored = scored[:top_k]
    if not anomalous:
        warnings.warn(
            "no entity moved past the threshold: the ranking is a weak guess", RcaWarning, stacklevel=2
        )
    return [
        Hypothesis(
            entity=entity,
            kind=kind,
            rank=i,
            score=float(score),
            match=float(m.match),
            onset=onset.get(entity) if entity in anomalous else None,
            reason=m.reason,
            explains=prop.explains.get(entity, ()),
            explained_by=prop.explained_by.get(entity, ()),
            evidence=evidence,
        )
        for i, (entity, kind, m, score, evidence) in enumerate(scored, start=1)
    ]
