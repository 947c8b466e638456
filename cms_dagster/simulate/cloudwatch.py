"""The CloudWatch side of the simulated estate: per-minute series of every AWS resource (RDS, SQS, Lambda,
EKS namespaces and clusters), shaped by the load of the stages that use them and by the incidents rooted
at them, and the CMS/AWSConfig facts of their configuration.

Drawn from generators seeded by (seed, series name), as the rest of the simulator
(:mod:`cms_dagster.simulate.engine`), so the same arguments give the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cms_dagster.domain.model import Ontology
from cms_dagster.simulate.engine import Timeline, rng_for
from cms_dagster.simulate.incidents import Incident

__all__ = ["CwSeries", "config_facts", "simulate_cloudwatch"]


@dataclass
class CwSeries:
    """One CloudWatch metric for one dimension set, per minute (Summary shape)."""

    namespace: str
    metric: str
    unit: str
    dimensions: dict[str, str]
    avg: np.ndarray
    count: np.ndarray
    min: np.ndarray
    max: np.ndarray
    p99: np.ndarray | None = None


def _gauge(
    ns: str,
    metric: str,
    unit: str,
    dims: dict[str, str],
    v: np.ndarray,
    spread: float = 0.0,
    p99: bool = False,
) -> CwSeries:
    v = np.asarray(v, float)
    mn, mx = v * (1 - spread), v * (1 + spread)
    return CwSeries(
        ns, metric, unit, dims, v, np.ones_like(v), mn, mx, v * (1 + 1.8 * spread) if p99 else None
    )


def _count(ns: str, metric: str, dims: dict[str, str], v: np.ndarray) -> CwSeries:
    v = np.asarray(v, float)
    return CwSeries(ns, metric, "Count", dims, v, np.ones_like(v), v, v)


def simulate_cloudwatch(
    ont: Ontology, tl: Timeline, load: dict[str, np.ndarray], incidents: list[Incident], seed: int
) -> list[CwSeries]:
    out: list[CwSeries] = []
    act = tl.activity()
    for res in ont.resources.values():
        r = rng_for(seed, "cw", res.id)
        ld = load.get(res.id, np.zeros(tl.n))
        ldc = np.minimum(ld, 4.0)
        n = tl.n

        def mask(kind: str, _res_id: str = res.id, _n: int = n) -> np.ndarray:
            m = np.zeros(_n, bool)
            for inc in incidents:
                if inc.kind == kind and inc.root_cause == _res_id:
                    m |= tl.mask(inc.start, inc.end)
                    inc.affected_resources.add(_res_id)
            return m

        def noise(s: float, _r: np.random.Generator = r, _n: int = n) -> np.ndarray:
            return _r.normal(0, s, _n)

        if res.kind == "rds":
            dims = {"DBInstanceIdentifier": res.name}
            maxc = float(res.attrs.get("max_connections", 400))
            pool = mask("connection_pool_exhaustion")
            cpu = np.clip(10 + 14 * act + 16 * ldc + noise(2.0) + np.where(pool, 30, 0), 1, 100)
            conns = np.round(maxc * (0.12 + 0.08 * act + 0.1 * ldc) + noise(4))
            conns = np.where(pool, np.round(maxc * r.uniform(0.97, 1.0, n)), np.clip(conns, 1, maxc * 0.8))
            rlat = np.clip(0.0012 + 0.0006 * ldc + noise(0.0001), 0.0003, None) * np.where(pool, 9, 1)
            wlat = np.clip(0.0020 + 0.0008 * ldc + noise(0.00015), 0.0004, None) * np.where(pool, 7, 1)
            gib = 1024**3
            total = 64 * gib if "2xlarge" in str(res.attrs.get("instance_class")) else 32 * gib
            out += [
                _gauge("AWS/RDS", "CPUUtilization", "Percent", dims, np.round(cpu, 2), 0.15),
                _gauge(
                    "AWS/RDS",
                    "FreeableMemory",
                    "Bytes",
                    dims,
                    np.round(total * (0.5 - 0.04 * ldc) + noise(gib * 0.01)),
                ),
                _gauge(
                    "AWS/RDS",
                    "FreeStorageSpace",
                    "Bytes",
                    dims,
                    np.round(900 * gib - np.arange(n) * 2.0e5 + noise(1e6)),
                ),
                _gauge("AWS/RDS", "DatabaseConnections", "Count", dims, conns, 0.03),
                _gauge(
                    "AWS/RDS",
                    "ReadIOPS",
                    "Count/Second",
                    dims,
                    np.round(np.clip(150 + 600 * act + 1400 * ldc + noise(30), 0, None), 2),
                    0.2,
                ),
                _gauge(
                    "AWS/RDS",
                    "WriteIOPS",
                    "Count/Second",
                    dims,
                    np.round(np.clip(80 + 300 * act + 900 * ldc + noise(20), 0, None), 2),
                    0.2,
                ),
                _gauge("AWS/RDS", "ReadLatency", "Seconds", dims, np.round(rlat, 6), 0.5, p99=True),
                _gauge("AWS/RDS", "WriteLatency", "Seconds", dims, np.round(wlat, 6), 0.5, p99=True),
                _gauge(
                    "AWS/RDS",
                    "DiskQueueDepth",
                    "Count",
                    dims,
                    np.round(np.clip(0.3 + 1.2 * ldc + noise(0.1), 0, None) * np.where(pool, 5, 1), 3),
                    0.3,
                ),
            ]
        elif res.kind == "sqs":
            dims = {"QueueName": res.name}
            sent = np.round(np.clip(30 + 300 * act + 2500 * ldc + noise(10), 0, None))
            recv = np.round(sent * r.uniform(0.97, 1.02, n))
            visible = np.round(np.clip(5 + 40 * ldc + noise(3), 0, None))
            out += [
                _gauge("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Count", dims, visible),
                _gauge(
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesNotVisible",
                    "Count",
                    dims,
                    np.round(np.clip(2 + 60 * ldc + noise(2), 0, None)),
                ),
                _gauge("AWS/SQS", "ApproximateNumberOfMessagesDelayed", "Count", dims, np.zeros(n)),
                _gauge(
                    "AWS/SQS",
                    "ApproximateAgeOfOldestMessage",
                    "Seconds",
                    dims,
                    np.round(np.clip(3 + 25 * ldc + noise(1.5), 0, None)),
                ),
                _count("AWS/SQS", "NumberOfMessagesSent", dims, sent),
                _count("AWS/SQS", "NumberOfMessagesReceived", dims, recv),
                _count("AWS/SQS", "NumberOfMessagesDeleted", dims, np.round(recv * 0.995)),
                _count(
                    "AWS/SQS",
                    "NumberOfEmptyReceives",
                    dims,
                    np.round(np.clip(120 - 100 * act + noise(5), 0, None)),
                ),
            ]
        elif res.kind == "lambda":
            dims = {"FunctionName": res.name}
            inv = np.round(np.clip(4 + 40 * act + 250 * ldc + noise(2), 0, None))
            dur = np.clip(
                float(res.attrs.get("memory_mb", 512)) * 0.35 * (1 + 0.1 * ldc) * r.lognormal(0, 0.08, n),
                5,
                None,
            )
            c = np.maximum(inv, 1)
            out += [
                _count("AWS/Lambda", "Invocations", dims, inv),
                _count("AWS/Lambda", "Errors", dims, r.poisson(inv * 0.0008).astype(float)),
                _count("AWS/Lambda", "Throttles", dims, np.zeros(n)),
                CwSeries(
                    "AWS/Lambda",
                    "Duration",
                    "Milliseconds",
                    dims,
                    np.round(dur, 2),
                    c,
                    np.round(dur * 0.4, 2),
                    np.round(dur * 2.6, 2),
                    np.round(dur * 2.1, 2),
                ),
                _gauge(
                    "AWS/Lambda",
                    "ConcurrentExecutions",
                    "Count",
                    dims,
                    np.round(np.clip(inv * dur / 60000 + noise(0.2), 0, None) + 1),
                    0.3,
                ),
            ]
        elif res.kind == "eks_cluster":
            continue  # derived from its namespaces below
        elif res.kind == "eks_namespace":
            dims = {"ClusterName": str(res.cluster), "Namespace": res.name}
            pods = float(res.attrs.get("pods", 10))
            mask("memory_leak")  # records the namespace as affected; the climb itself is drawn below
            cap = mask("capacity_constraint")
            cpu = np.clip(22 + 15 * act + 14 * ldc + noise(2), 1, 100)
            cpu = np.where(cap, np.clip(cpu + 45, 0, 100), cpu)
            over = np.clip(noise(0.4) + 0.3, 0, None) + np.where(cap, r.uniform(35, 60, n), 0)
            mem = np.clip(38 + 6 * act + 4 * ldc + noise(1.5), 5, 100)
            restarts = r.poisson(0.01, n).astype(float)
            for inc in incidents:
                if inc.kind == "memory_leak" and inc.root_cause == res.id:
                    i0, i1 = max(0, tl.index(inc.start)), min(n, tl.index(inc.end))
                    level = 0.0
                    for i in range(i0, i1):  # climbs ~0.4 %/min; at 95 % a pod restart sheds some of it
                        level += 0.4 * inc.severity
                        if mem[i] + level >= 95:
                            restarts[i] += 3
                            level -= 18
                        mem[i] = min(99.0, mem[i] + level)
            running = np.full(n, pods) - np.where(cap, np.round(pods * 0.35), 0) - (r.random(n) < 0.003)
            out += [
                _gauge("ContainerInsights", "pod_cpu_utilization", "Percent", dims, np.round(cpu, 2), 0.25),
                _gauge("ContainerInsights", "pod_memory_utilization", "Percent", dims, np.round(mem, 2), 0.1),
                _gauge(
                    "ContainerInsights",
                    "pod_cpu_utilization_over_pod_limit",
                    "Percent",
                    dims,
                    np.round(over, 2),
                    0.3,
                ),
                _count("ContainerInsights", "pod_number_of_container_restarts", dims, restarts),
                _gauge(
                    "ContainerInsights",
                    "service_number_of_running_pods",
                    "Count",
                    {**dims, "Service": res.name},
                    running,
                ),
            ]
    # cluster level: nodes from the namespaces on it
    for cl in (x for x in ont.resources.values() if x.kind == "eks_cluster"):
        r = rng_for(seed, "cw", cl.id)
        dims = {"ClusterName": cl.name}
        ns_cpu = [
            s.avg
            for s in out
            if s.metric == "pod_cpu_utilization" and s.dimensions.get("ClusterName") == cl.name
        ]
        ns_mem = [
            s.avg
            for s in out
            if s.metric == "pod_memory_utilization" and s.dimensions.get("ClusterName") == cl.name
        ]
        failed = np.zeros(tl.n)
        for inc in incidents:
            if inc.kind == "capacity_constraint" and inc.root_cause.startswith(f"{cl.id}/"):
                failed[tl.mask(inc.start, inc.end)] = 2
        out += [
            _gauge(
                "ContainerInsights",
                "node_cpu_utilization",
                "Percent",
                dims,
                np.round(np.mean(ns_cpu, axis=0) * 0.8 + r.normal(0, 1, tl.n), 2),
                0.2,
            ),
            _gauge(
                "ContainerInsights",
                "node_memory_utilization",
                "Percent",
                dims,
                np.round(np.mean(ns_mem, axis=0) * 0.9 + r.normal(0, 1, tl.n), 2),
                0.1,
            ),
            _gauge("ContainerInsights", "cluster_failed_node_count", "Count", dims, failed),
        ]
    return out


def config_facts(ont: Ontology) -> list[tuple[str, str, dict[str, str], float]]:
    """(metric, unit, dimensions, value) of the CMS/AWSConfig gauges for the estate."""
    facts: list[tuple[str, str, dict[str, str], float]] = []
    for res in ont.resources.values():
        if res.kind == "rds":
            facts.append(
                (
                    "MaxConnections",
                    "Count",
                    {"DBInstanceIdentifier": res.name},
                    float(res.attrs.get("max_connections", 400)),
                )
            )
        elif res.kind == "sqs":
            q = {"QueueName": res.name}
            facts += [
                ("VisibilityTimeout", "Seconds", q, 30.0),
                ("MessageRetentionPeriod", "Seconds", q, 345600.0),
                ("RedriveMaxReceiveCount", "Count", q, 5.0),
            ]
        elif res.kind == "lambda":
            f = {"FunctionName": res.name}
            facts += [
                ("MemorySize", "Megabytes", f, float(res.attrs.get("memory_mb", 512))),
                ("Timeout", "Seconds", f, float(res.attrs.get("timeout_s", 60))),
            ]
    return facts
