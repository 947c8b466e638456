"""Incident-kind signatures: what each incident kind of docs/semantic-conventions.md §4 looks like on its
root-cause entity, as a match in [0, 1] from the entity's series statistics.

Series are named as the warehouse names them (``conn_ratio``, ``ReadLatency``, ``pod_memory_utilization``,
``up``, ``latency_ms``, ``staleness_s``, ``messages``, ``failed``, ...); the full CloudWatch and ``cms.*``
names are understood too (:func:`canonical_metric`). :mod:`cms_dagster.rca.hypotheses` ranks with them.
See cms_dagster/rca/README.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cms_dagster.otel.conventions import INCIDENT_KINDS
from cms_dagster.rca.engine import SURE_FACTOR

__all__ = [
    "KINDS",
    "ROOT_TYPES",
    "SIGNATURES",
    "Match",
    "Signals",
    "canonical_metric",
    "entity_type",
]

KINDS = INCIDENT_KINDS  # the names of docs/semantic-conventions.md §4

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


# --- signatures -------------------------------------------------------------------------------------------


def _ramp(x: float, lo: float, hi: float) -> float:
    if x is None or not math.isfinite(x):
        return 0.0
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))


@dataclass
class Signals:
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
class Match:
    match: float
    metrics: tuple[str, ...]  # the key series, most telling first
    reason: str
    # the match rests on the climb that led up to start (ctx["before"]), not on the series after it
    before: bool = False


def _fmt(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else str(x)


def _sig_pool(sig: Signals, ctx: Mapping[str, Any]) -> Match:
    conn_metric = "conn_ratio" if sig.get("conn_ratio") else "DatabaseConnections"
    conn = sig.get(conn_metric)
    if conn is None:
        return Match(0.0, (), "")
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
    return Match(match, (conn_metric, latency_metric, "CPUUtilization"), reason)


def _leak(sig: Signals) -> tuple[float, str]:
    mem = sig.get("pod_memory_utilization")
    if mem is None:
        return 0.0, ""
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
    return match, reason


def _still_high(sig: Signals, metric: str) -> bool:
    """The series ended its window (the analysis start, for the view before it) still past the threshold
    above its baseline: a climb that was over before the incident began explains nothing in it."""
    r = sig.get(metric)
    if r is None or not float(r["scale"]) > 0:
        return False
    return (float(r["incident_last"]) - float(r["baseline"])) / float(r["scale"]) >= sig.threshold


def _sig_memory_leak(sig: Signals, ctx: Mapping[str, Any]) -> Match:
    metrics = ("pod_memory_utilization", "pod_number_of_container_restarts")
    match, reason = _leak(sig)
    # A leak climbs slowly: its climb often begins hours before the alarm that starts the analysis (a batch
    # that loads the databases, say), and by then the history the series is judged against is the climb
    # itself. The view before start (ctx["before"]: the same statistics over the hours up to start, against
    # the hours before them) sees it whole. A steady climb that began before the work started and is still
    # high at start is evidence of a cause, not of load.
    before: Signals | None = ctx.get("before")
    if before is not None and _still_high(before, "pod_memory_utilization"):
        early, early_reason = _leak(before)
        if early > match:
            mem = before.get("pod_memory_utilization")
            since = pd.Timestamp(mem["moved_at"]) if mem is not None else pd.NaT
            view_from = pd.Timestamp(mem["view_from"]) if mem is not None and "view_from" in mem else pd.NaT
            if pd.isna(since):
                when = "climbing"
            elif not pd.isna(view_from) and since <= view_from:  # it was climbing when the view began
                when = f"already climbing at {since:%Y-%m-%d %H:%M}"
            else:
                when = f"climbing since {since:%Y-%m-%d %H:%M}"
            return Match(early, metrics, f"{early_reason}, {when}, before the incident's start", True)
    return Match(match, metrics, reason)


def _sig_capacity(sig: Signals, ctx: Mapping[str, Any]) -> Match:
    cluster: Signals | None = ctx.get("cluster")
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
    return Match(
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


def _feed_state(sig: Signals) -> tuple[float, float]:
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


def _sig_outage(sig: Signals, ctx: Mapping[str, Any]) -> Match:
    down, silent = _feed_state(sig)
    match = max(down, 0.6 * silent)
    reason = "feed reported up=0" if down else "messages stopped"
    return Match(match, ("up", "messages", "staleness_s"), reason if match else "")


def _sig_network(sig: Signals, ctx: Mapping[str, Any]) -> Match:
    down, _ = _feed_state(sig)
    ratio = sig.ratio("latency_ms")
    match = (1.0 - down) * _ramp(ratio, 1.5, 3.0) * sig.zconf(sig.up("latency_ms"))
    return Match(match, ("latency_ms", "staleness_s"), f"latency {_fmt(ratio)}x baseline with the feed up")


def _sig_delayed(sig: Signals, ctx: Mapping[str, Any]) -> Match:
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
    return Match(match, ("staleness_s", "messages"), reason)


def _sig_volume(sig: Signals, ctx: Mapping[str, Any]) -> Match:
    down, _ = _feed_state(sig)
    ratio = sig.ratio("messages")
    match = (1.0 - down) * _ramp(ratio, 1.5, 3.0) * sig.zconf(sig.up("messages"))
    return Match(match, ("messages",), f"messages {_fmt(ratio)}x baseline")


def _sig_job_failure(sig: Signals, ctx: Mapping[str, Any]) -> Match:
    failed = sig.get("failed")
    if failed is None:
        return Match(0.0, (), "")
    newly = float(failed["incident_max"]) >= 0.5 and float(failed["baseline"]) < 0.5
    retries = sig.zconf(sig.up("retries"))
    match = (1.0 if newly else 0.0) * (0.8 + 0.2 * retries)
    reason = "stage failed" + (" after retries" if retries else "")
    return Match(match, ("failed", "retries", "duration_s"), reason)


SIGNATURES: dict[str, Callable[[Signals, Mapping[str, Any]], Match]] = {
    "connection_pool_exhaustion": _sig_pool,
    "memory_leak": _sig_memory_leak,
    "network_latency": _sig_network,
    "delayed_market_data": _sig_delayed,
    "volume_spike": _sig_volume,
    "capacity_constraint": _sig_capacity,
    "job_failure": _sig_job_failure,
    "feed_outage": _sig_outage,
}
