"""Domain-aware root-cause ranking: which entity, with which incident kind, and the evidence for it.

Input: the entity dependency graph (``ontology_graph`` builds it from an estate.yaml-shaped dict) and long
series ``time, entity, metric, value`` named as the warehouse names them (``conn_ratio``, ``ReadLatency``,
``pod_memory_utilization``, ``up``, ``latency_ms``, ``staleness_s``, ``messages``, ``failed``, ...; the full
CloudWatch and ``cms.*`` names are understood too). Output: ranked (entity, kind) hypotheses.

Each entity's series are scored against their history by the generic engine; each incident kind of
docs/semantic-conventions.md §4 has a signature (what is seen on its root-cause entity) that gives a match
in [0, 1]; the graph then discounts entities whose anomalies an anomalous dependency explains and rewards
entities that explain many anomalous dependents. See cms_dagster/rca/README.md.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cms_dagster.otel.conventions import INCIDENT_KINDS
from cms_dagster.rca.engine import (
    EXPLAINED_FLOOR,
    QUIET_FACTOR,
    SURE_FACTOR,
    Evidence,
    anomaly_weight,
    as_timedelta,
    as_timestamp,
    check_window,
    confidence,
    dependency_closure,
    evidence_from_row,
    iso_time,
    lateness_factor,
    parse_duration,
    propagate,
    related_nodes,
    resolve_tolerance,
    sampling_step,
)
from cms_dagster.rca.series import DEFAULT_ONSET_Z, DEFAULT_PERSISTENCE, DEFAULT_THRESHOLD, series_stats
from cms_dagster.rca.validate import RcaInputError, RcaWarning, parse_time, prepare_edges, prepare_metrics

__all__ = [
    "KINDS",
    "ROOT_TYPES",
    "UNKNOWN",
    "Hypothesis",
    "canonical_metric",
    "entity_type",
    "max_connections_from_ontology",
    "staleness_sla_from_ontology",
    "ontology_graph",
    "rank_incident",
]

KINDS = INCIDENT_KINDS  # the names of docs/semantic-conventions.md §4
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

ROOT_TYPES: dict[str, tuple[str, ...]] = {
    "connection_pool_exhaustion": ("rds",),
    "memory_leak": ("eks_namespace",),
    "network_latency": ("feed",),
    "delayed_market_data": ("feed",),
    "volume_spike": ("feed",),
    "capacity_constraint": ("eks_namespace", "eks_cluster"),
    "job_failure": ("stage",),
    "feed_outage": ("feed",),
}

_ALIASES = {
    "cms.feed.up": "up",
    "cms.feed.latency": "latency_ms",
    "cms.feed.staleness": "staleness_s",
    "cms.feed.messages": "messages",
    "cms.feed.missing_fields": "missing_fields",
    "cms.feed.invalid_values": "invalid_values",
    "cms.stage.run.duration": "duration_s",
    "cms.stage.run.records": "records",
    "cms.batch.run.duration": "duration_s",
    "cms.batch.run.records": "records",
}


def canonical_metric(name: str) -> str:
    """The short metric name the signatures use: ``amazonaws.com/AWS/RDS/ReadLatency`` -> ``ReadLatency``,
    ``cms.feed.latency`` -> ``latency_ms``; short names pass through."""
    if name in _ALIASES:
        return _ALIASES[name]
    if name.startswith("amazonaws.com/") or name.startswith("CMS/AWSConfig/"):
        return name.rsplit("/", 1)[-1]
    return name


def entity_type(entity: str) -> str:
    """``rds``, ``sqs``, ``lambda``, ``feed``, ``stage``, ``job``, ``eks_cluster``, ``eks_namespace``, ..."""
    kind, _, name = entity.partition(":")
    if kind == "eks":
        return "eks_namespace" if "/" in name else "eks_cluster"
    return kind


# --- the ontology as a graph ------------------------------------------------------------------------------


def _need(item: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(item, Mapping) or key not in item or item[key] in (None, ""):
        raise RcaInputError(f"ontology: {where} has no {key!r}; every entry needs one (see estate.yaml)")
    return item[key]


def ontology_graph(ontology: Mapping[str, Any], *, ingest_reads_feeds: bool = True) -> list[tuple[str, str]]:
    """Dependency edges (source depends on target) from an estate.yaml-shaped dict (``yaml.safe_load``).

    A job depends on its feeds and its stages; a stage on the stages it waits for (``depends_on``) and the
    resources it uses; an EKS namespace on its cluster. With ``ingest_reads_feeds`` (default) the job's ingest
    stages (type ``ingest``, or no ``depends_on``) also depend on the job's feeds, so a feed fault explains
    the slow or failed ingest stage and, through the stage DAG, the stages after it.
    """
    if not isinstance(ontology, Mapping):
        raise RcaInputError(f"ontology must be a mapping like estate.yaml, got {type(ontology).__name__}")
    edges: list[tuple[str, str]] = []
    for i, job in enumerate(ontology.get("jobs") or []):
        asset_class = _need(job, "asset_class", f"jobs[{i}]")
        job_name = _need(job, "id", f"jobs[{i}]")
        job_id = f"job:{asset_class}.{job_name}"
        feeds = [f"feed:{f}" for f in job.get("feeds") or []]
        edges.extend((job_id, f) for f in feeds)
        for j, stage in enumerate(job.get("stages") or []):
            stage_name = _need(stage, "id", f"jobs[{i}] ({job_id}) stages[{j}]")
            stage_id = f"stage:{asset_class}.{job_name}.{stage_name}"
            edges.append((job_id, stage_id))
            depends_on = stage.get("depends_on") or []
            edges.extend((stage_id, f"stage:{asset_class}.{job_name}.{d}") for d in depends_on)
            edges.extend((stage_id, str(r)) for r in stage.get("resources") or [])
            if ingest_reads_feeds and (stage.get("type") == "ingest" or not depends_on):
                edges.extend((stage_id, f) for f in feeds)
    for i, res in enumerate(ontology.get("resources") or []):
        if isinstance(res, Mapping) and res.get("kind") == "eks_namespace" and res.get("cluster"):
            edges.append((str(_need(res, "id", f"resources[{i}]")), f"eks:{res['cluster']}"))
    return prepare_edges(edges)


def max_connections_from_ontology(ontology: Mapping[str, Any]) -> dict[str, float]:
    """``{"rds:orders-db": 400, ...}`` from the ontology's rds resources that declare max_connections."""
    out = {}
    for res in ontology.get("resources") or []:
        if (
            isinstance(res, Mapping)
            and res.get("max_connections")
            and str(res.get("id", "")).startswith("rds:")
        ):
            out[str(res["id"])] = float(res["max_connections"])
    return out


def staleness_sla_from_ontology(ontology: Mapping[str, Any]) -> dict[str, float]:
    """``{"feed:cme-mdp": 30, ...}`` from the ontology's feeds that declare staleness_sla_s."""
    return {
        f"feed:{f['id']}": float(f["staleness_sla_s"])
        for f in ontology.get("feeds") or []
        if isinstance(f, Mapping) and f.get("id") and f.get("staleness_sla_s")
    }


# --- signatures -------------------------------------------------------------------------------------------


def _ramp(x: float, lo: float, hi: float) -> float:
    if x is None or not math.isfinite(x):
        return 0.0
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))


@dataclass
class _Signals:
    """One entity's series statistics by canonical metric name, with helpers the signatures read."""

    rows: dict[str, dict[str, Any]]
    threshold: float

    def get(self, metric: str) -> dict[str, Any] | None:
        return self.rows.get(metric)

    def up(self, metric: str) -> float:
        r = self.rows.get(metric)
        return max(0.0, float(r["z"])) if r else 0.0

    def down(self, metric: str) -> float:
        r = self.rows.get(metric)
        return max(0.0, -float(r["z"])) if r else 0.0

    def zconf(self, z: float) -> float:
        """0 at half the sure level (robust |z| 2.5 by default), 1 at 1.5 x the sure level (7.5)."""
        sure = SURE_FACTOR * self.threshold
        return _ramp(z, 0.5 * sure, 1.5 * sure)

    def ratio(self, metric: str) -> float:
        """Incident peak over baseline (inf when the baseline is 0 and the peak is not)."""
        r = self.rows.get(metric)
        if not r:
            return float("nan")
        base, peak = float(r["baseline"]), float(r["incident_max"])
        if base > 0:
            return peak / base
        return float("inf") if peak > 0 else float("nan")


@dataclass(frozen=True)
class _Match:
    match: float
    metrics: tuple[str, ...]  # the key series, most telling first
    reason: str


def _fmt(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else str(x)


def _sig_pool(sig: _Signals, ctx: Mapping[str, Any]) -> _Match:
    conn_metric = "conn_ratio" if sig.get("conn_ratio") else "DatabaseConnections"
    conn = sig.get(conn_metric)
    if conn is None:
        return _Match(0.0, (), "")
    if conn_metric == "conn_ratio":
        saturation = float(conn["incident_max"])
    elif ctx.get("max_connections"):
        saturation = float(conn["incident_max"]) / float(ctx["max_connections"])
    else:
        saturation = float("nan")
    moved = sig.zconf(sig.up(conn_metric))
    pool = _ramp(saturation, 0.8, 0.95) if math.isfinite(saturation) else 0.5
    latency_metric = max(("ReadLatency", "WriteLatency"), key=sig.up)
    latency = sig.zconf(sig.up(latency_metric))
    match = min(pool, moved) * (0.6 + 0.4 * latency)
    sat_text = f"{saturation:.0%} of max connections" if math.isfinite(saturation) else "connections up"
    reason = f"{conn_metric} reached {sat_text}; {latency_metric} z {sig.up(latency_metric):+.1f}"
    return _Match(match, (conn_metric, latency_metric, "CPUUtilization"), reason)


def _sig_memory_leak(sig: _Signals, ctx: Mapping[str, Any]) -> _Match:
    mem = sig.get("pod_memory_utilization")
    if mem is None:
        return _Match(0.0, (), "")
    climb = sig.zconf(sig.up("pod_memory_utilization"))
    steady = _ramp(float(mem["trend_z"]), 3.0, 10.0)
    rising = _ramp(float(mem["rise_fraction"]), 0.5, 0.6)
    restarts = sig.zconf(sig.up("pod_number_of_container_restarts"))
    shape = max(steady * (0.5 + 0.5 * rising), restarts)
    match = climb * (0.3 + 0.7 * shape)
    reason = (
        f"pod memory {_fmt(float(mem['baseline']))} -> {_fmt(float(mem['incident_max']))} "
        f"(trend z {float(mem['trend_z']):+.1f}, {float(np.nan_to_num(mem['rise_fraction'])):.0%} of steps rising)"
        + (f"; restarts z {sig.up('pod_number_of_container_restarts'):+.1f}" if restarts > 0 else "")
    )
    return _Match(match, ("pod_memory_utilization", "pod_number_of_container_restarts"), reason)


def _sig_capacity(sig: _Signals, ctx: Mapping[str, Any]) -> _Match:
    cluster: _Signals | None = ctx.get("cluster")
    over = sig.zconf(sig.up("pod_cpu_utilization_over_pod_limit"))
    cpu = 0.3 * sig.zconf(sig.up("pod_cpu_utilization"))  # busy is not yet over the limit
    pods = sig.zconf(sig.down("service_number_of_running_pods"))
    failed_nodes = 0.0
    if cluster is not None:
        failed_nodes = cluster.zconf(cluster.up("cluster_failed_node_count"))
    failed_nodes = max(failed_nodes, sig.zconf(sig.up("cluster_failed_node_count")))
    parts = [(0.8, max(over, cpu)), (0.8, pods), (0.6, failed_nodes)]
    match = 1.0 - float(np.prod([1.0 - w * x for w, x in parts]))
    # a steady memory climb with restarts is a leak's picture, not a capacity one
    mem = sig.get("pod_memory_utilization")
    if mem is not None:
        leaky = sig.zconf(sig.up("pod_memory_utilization")) * _ramp(float(mem["trend_z"]), 3.0, 10.0)
        match *= 1.0 - 0.5 * leaky
    said = []
    if over or cpu:
        said.append(f"CPU over pod limit z {sig.up('pod_cpu_utilization_over_pod_limit'):+.1f}")
    if pods:
        said.append(f"running pods z {-sig.down('service_number_of_running_pods'):+.1f}")
    if failed_nodes:
        said.append("failed node(s) in the cluster")
    return _Match(
        match,
        (
            "pod_cpu_utilization_over_pod_limit",
            "service_number_of_running_pods",
            "pod_cpu_utilization",
            "cluster_failed_node_count",
            "node_cpu_utilization",
        ),
        "; ".join(said),
    )


def _feed_state(sig: _Signals) -> tuple[float, float]:
    """(down, down_by_messages): the feed reported up=0, or its messages stopped."""
    up = sig.get("up")
    down = 0.0
    if up is not None and float(up["baseline"]) >= 0.5 and float(up["incident_min"]) < 0.5:
        down = 1.0
    msgs = sig.get("messages")
    silent = 0.0
    if msgs is not None and float(msgs["baseline"]) > 0:
        silent = _ramp(1.0 - float(msgs["incident_min"]) / float(msgs["baseline"]), 0.9, 0.99)
        silent *= sig.zconf(sig.down("messages"))
    return down, silent


def _sig_outage(sig: _Signals, ctx: Mapping[str, Any]) -> _Match:
    down, silent = _feed_state(sig)
    match = max(down, 0.6 * silent)
    reason = "feed reported up=0" if down else "messages stopped"
    return _Match(match, ("up", "messages", "staleness_s"), reason if match else "")


def _sig_network(sig: _Signals, ctx: Mapping[str, Any]) -> _Match:
    down, _ = _feed_state(sig)
    ratio = sig.ratio("latency_ms")
    match = (1.0 - down) * _ramp(ratio, 1.5, 3.0) * sig.zconf(sig.up("latency_ms"))
    return _Match(match, ("latency_ms", "staleness_s"), f"latency {_fmt(ratio)}x baseline with the feed up")


def _sig_delayed(sig: _Signals, ctx: Mapping[str, Any]) -> _Match:
    down, _ = _feed_state(sig)
    stale = sig.zconf(sig.up("staleness_s"))
    fewer = sig.zconf(sig.down("messages"))
    match = (1.0 - down) * stale * (0.7 + 0.3 * fewer)
    sla = ctx.get("staleness_sla")
    late = ""
    if sla and sig.get("staleness_s") is not None:
        # delayed means older than the feed's staleness SLA, not a blip of a fraction of a second
        peak = float(sig.get("staleness_s")["incident_max"])
        match *= _ramp(peak / float(sla), 0.5, 1.0)
        late = f" ({_fmt(peak)} s against an SLA of {_fmt(float(sla))} s)"
    reason = (
        f"staleness {_fmt(sig.ratio('staleness_s'))}x baseline{late}"
        + (f", messages z {-sig.down('messages'):+.1f}" if fewer else "")
        + " with the feed up"
    )
    return _Match(match, ("staleness_s", "messages"), reason)


def _sig_volume(sig: _Signals, ctx: Mapping[str, Any]) -> _Match:
    down, _ = _feed_state(sig)
    ratio = sig.ratio("messages")
    match = (1.0 - down) * _ramp(ratio, 1.5, 3.0) * sig.zconf(sig.up("messages"))
    return _Match(match, ("messages",), f"messages {_fmt(ratio)}x baseline")


def _sig_job_failure(sig: _Signals, ctx: Mapping[str, Any]) -> _Match:
    failed = sig.get("failed")
    if failed is None:
        return _Match(0.0, (), "")
    newly = float(failed["incident_max"]) >= 0.5 and float(failed["baseline"]) < 0.5
    retries = sig.zconf(sig.up("retries"))
    match = (1.0 if newly else 0.0) * (0.8 + 0.2 * retries)
    reason = "stage failed" + (" after retries" if retries else "")
    return _Match(match, ("failed", "retries", "duration_s"), reason)


_SIGNATURES: dict[str, Callable[[_Signals, Mapping[str, Any]], _Match]] = {
    "connection_pool_exhaustion": _sig_pool,
    "memory_leak": _sig_memory_leak,
    "network_latency": _sig_network,
    "delayed_market_data": _sig_delayed,
    "volume_spike": _sig_volume,
    "capacity_constraint": _sig_capacity,
    "job_failure": _sig_job_failure,
    "feed_outage": _sig_outage,
}


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
    graph_edges: entity dependency edges (source depends on target), e.g. ``ontology_graph(estate)``.
    target: restrict to this entity (e.g. the job that breached its SLA) and what it depends on.
    max_connections: per rds entity, to judge DatabaseConnections when no ``conn_ratio`` series is given
        (a ``MaxConnections`` series on the entity works too).
    staleness_sla: per feed entity, seconds after which its data counts as delayed (the ontology's
        ``staleness_sla_s``): delayed_market_data then needs staleness past half of it.
    Other arguments as in :func:`cms_dagster.rca.engine.rank`. Raises RcaInputError on unusable input.
    """
    if isinstance(metrics, pd.DataFrame) and "entity" not in metrics.columns and "node" in metrics.columns:
        metrics = metrics.rename(columns={"node": "entity"})
    prepared = prepare_metrics(metrics, node_column="entity", where=where)
    edges = prepare_edges(graph_edges)
    start_ts = parse_time(start, name="start")
    end_ts = parse_time(end, name="end") if end is not None else None
    start_ns, end_ns = check_window(prepared.time, start_ts, end_ts)
    stats = series_stats(
        prepared,
        start_ns,
        end_ns=end_ns,
        baseline_ns=parse_duration(baseline, name="baseline"),
        threshold=threshold,
        onset_z=onset_z,
        persistence=persistence,
    )
    no_history = stats[stats["n_history"] == 0]
    if len(no_history):
        warnings.warn(
            f"{len(no_history)} series have no history before start and were ignored "
            f"(e.g. {no_history['node'].iloc[0]}/{no_history['metric'].iloc[0]})",
            RcaWarning,
            stacklevel=2,
        )
    stats = stats[stats["n_history"] > 0].copy()
    stats["canonical"] = [canonical_metric(m) for m in stats["metric"]]
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
    signals: dict[str, _Signals] = {}
    for entity, rows in rows_by_entity.items():
        records: dict[str, dict[str, Any]] = {}
        for r in rows:
            records.setdefault(r["canonical"], r)  # the strongest if two names map to one
        signals[entity] = _Signals(records, threshold)
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

    hypotheses: list[tuple[str, str, _Match]] = []
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
        best = 0.0
        for kind, fn in _SIGNATURES.items():
            if etype not in ROOT_TYPES[kind]:
                continue
            m = fn(sig, ctx)
            best = max(best, m.match)
            if etype == "eks_cluster":
                m = _Match(m.match * CLUSTER_DISCOUNT, m.metrics, m.reason + " (cluster-wide)")
            if m.match > 0:
                hypotheses.append((entity, kind, m))
        if entity in anomalous and best < 0.5:
            # fades as a known kind fits better, so a weak but real fit still ranks above "unknown"
            unknown = UNKNOWN_MATCH * (1.0 - best)
            hypotheses.append(
                (entity, UNKNOWN, _Match(unknown, (), "anomalous, but no incident kind's signature fits"))
            )
        can_be_root = any(etype in types for types in ROOT_TYPES.values())
        best_match[entity] = max(best, EXPLAINER_FLOOR if can_be_root else NON_ROOT_EXPLAINER)

    plausibility = {e: confidence(strength[e], threshold) * best_match[e] for e in anomalous}
    step = sampling_step(prepared.time, prepared.series)
    tolerance = resolve_tolerance(onset_tolerance, step)
    quiet = {e for e, a in strength.items() if a < QUIET_FACTOR * threshold}
    prop = propagate(anomalous, plausibility, prop_edges, tolerance=tolerance, quiet=quiet)
    first = _first_related_onset(anomalous, edges, own_step)
    allowed = dependency_closure(edges, target) if target is not None else None

    scored = []
    for entity, kind, m in hypotheses:
        if allowed is not None and entity not in allowed:
            continue
        rows = rows_by_entity[entity]
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
