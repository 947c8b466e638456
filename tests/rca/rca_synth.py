"""Synthetic incidents on the default estate for the RCA tests: normal history, then one injected root cause
whose symptoms spread the way docs/semantic-conventions.md §4 describes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

import cms_dagster

ESTATE = Path(cms_dagster.__file__).parent / "domain" / "estate.yaml"
START = pd.Timestamp("2026-11-20T21:00:00Z")
HISTORY_MIN = 180
INCIDENT_MIN = 60
RUNS = 20


def load_estate() -> dict:
    return yaml.safe_load(ESTATE.read_text())


def _jobs(onto: dict) -> list[dict]:
    out = []
    for job in onto["jobs"]:
        jid = f"job:{job['asset_class']}.{job['id']}"
        stages = [
            {
                "id": f"stage:{job['asset_class']}.{job['id']}.{s['id']}",
                "type": s["type"],
                "resources": s.get("resources", []),
                "depends_on": [
                    f"stage:{job['asset_class']}.{job['id']}.{d}" for d in s.get("depends_on", [])
                ],
                "minutes": s["minutes"],
            }
            for s in job["stages"]
        ]
        out.append(
            {
                "id": jid,
                "feeds": [f"feed:{f}" for f in job["feeds"]],
                "stages": stages,
                "records": job["records"],
            }
        )
    return out


def make_incident(
    kind: str,
    root: str,
    seed: int = 0,
    onto: dict | None = None,
    *,
    severity: float = 1.0,
    decoy: bool = False,
) -> pd.DataFrame:
    """Long metrics (time, entity, metric, value) with the incident ``kind`` on ``root`` starting at START.

    ``severity`` (0..1] scales the effects; ``decoy`` adds an unrelated, milder anomaly elsewhere and
    back-pressure symptoms on resources the affected stages use.
    """
    onto = onto or load_estate()
    rng = np.random.default_rng(seed)
    minutes = pd.date_range(
        START - pd.Timedelta(minutes=HISTORY_MIN), periods=HISTORY_MIN + INCIDENT_MIN, freq="min"
    )
    n = len(minutes)
    k0 = HISTORY_MIN + int(rng.integers(1, 5))  # the fault begins a few minutes after the declared start
    after = np.arange(n) >= k0
    ramp = np.clip((np.arange(n) - k0) / 30.0, 0, 1)  # 0 -> 1 over 30 minutes after the fault
    frames = []

    def add(entity: str, metric: str, values: np.ndarray, times=minutes) -> None:
        frames.append(pd.DataFrame({"time": times, "entity": entity, "metric": metric, "value": values}))

    def noisy(level: float, rel: float = 0.05) -> np.ndarray:
        return level * (1 + rel * rng.standard_normal(n))

    jobs = _jobs(onto)
    affected_stages: dict[str, dict[str, float]] = {}  # stage -> effects
    affected_jobs: dict[str, dict[str, float]] = {}

    def hit_stage(stage_id: str, **effects: float) -> None:
        affected_stages.setdefault(stage_id, {}).update(effects)

    def hit_job(job_id: str, **effects: float) -> None:
        affected_jobs.setdefault(job_id, {}).update(effects)

    # --- feeds --------------------------------------------------------------------------------------------
    for f in onto["feeds"]:
        fid = f"feed:{f['id']}"
        up = np.ones(n)
        latency = noisy(f["latency_ms"], 0.08)
        staleness = np.abs(rng.normal(2.0, 0.5, n))
        messages = noisy(f["messages_per_min"], 0.06)
        missing = rng.poisson(0.2, n).astype(float)
        invalid = rng.poisson(0.3, n).astype(float)
        if fid == root:
            if kind == "feed_outage":
                up[after] = 0
                messages[after] = 0
                staleness[after] = 60.0 * (np.arange(n)[after] - k0 + 1)
            elif kind == "network_latency":
                latency[after] *= 1 + 5 * severity
            elif kind == "delayed_market_data":
                staleness[after] += 30.0 * severity * (np.arange(n)[after] - k0 + 1)
                messages[after] *= 1 - 0.6 * severity
            elif kind == "volume_spike":
                messages[after] *= 1 + 3 * severity
        for metric, values in (
            ("up", up),
            ("latency_ms", latency),
            ("staleness_s", staleness),
            ("messages", messages),
            ("missing_fields", missing),
            ("invalid_values", invalid),
        ):
            add(fid, metric, values)

    # --- resources ----------------------------------------------------------------------------------------
    stages_using: dict[str, list[str]] = {}
    for job in jobs:
        for s in job["stages"]:
            for r in s["resources"]:
                stages_using.setdefault(r, []).append(s["id"])
    for res in onto["resources"]:
        rid, rkind = res["id"], res["kind"]
        if rkind == "rds":
            maxc = res["max_connections"]
            conns = noisy(0.4 * maxc, 0.05)
            read_lat = noisy(0.004, 0.1)
            write_lat = noisy(0.006, 0.1)
            cpu = noisy(35, 0.08)
            if rid == root and kind == "connection_pool_exhaustion":
                conns = np.where(after, maxc * (0.4 + 0.6 * ramp), conns)
                conns = np.minimum(conns, maxc)
                read_lat = np.where(after, read_lat * (1 + 8 * severity * ramp), read_lat)
                write_lat = np.where(after, write_lat * (1 + 6 * severity * ramp), write_lat)
                for st in stages_using.get(rid, []):
                    hit_stage(st, slow=2.5, fail=1.0)
            add(rid, "DatabaseConnections", conns)
            add(rid, "conn_ratio", conns / maxc)
            add(rid, "ReadLatency", read_lat)
            add(rid, "WriteLatency", write_lat)
            add(rid, "CPUUtilization", cpu)
        elif rkind == "sqs":
            visible = noisy(200, 0.15)
            add(rid, "ApproximateNumberOfMessagesVisible", visible)
            add(rid, "ApproximateAgeOfOldestMessage", noisy(20, 0.2))
        elif rkind == "lambda":
            add(rid, "Errors", rng.poisson(0.5, n).astype(float))
            add(rid, "Duration", noisy(400, 0.1))
        elif rkind == "eks_cluster":
            failed = np.zeros(n)
            if kind == "capacity_constraint" and root.startswith(rid + "/"):
                failed[after] = 1
            add(rid, "cluster_failed_node_count", failed)
            add(rid, "node_cpu_utilization", noisy(45, 0.06))
        elif rkind == "eks_namespace":
            mem = noisy(50, 0.03)
            cpu = noisy(40, 0.06)
            over = np.abs(rng.normal(0.0, 1.0, n))
            restarts = rng.poisson(0.05, n).astype(float)
            pods = np.full(n, float(res["pods"]))
            if rid == root and kind == "memory_leak":
                climb = np.clip((np.arange(n) - k0) / 45.0, 0, 1.2)
                mem = np.where(after, mem + 45 * severity * climb, mem)
                restarts[after & (np.arange(n) > k0 + 35)] += 1
                for st in stages_using.get(rid, []):
                    hit_stage(st, slow=1.8)
            if rid == root and kind == "capacity_constraint":
                cpu = np.where(after, cpu * 2.0, cpu)
                over = np.where(after, over + 40 * severity, over)
                pods = np.where(after, pods - max(2, res["pods"] // 4), pods)
                for st in stages_using.get(rid, []):
                    hit_stage(st, slow=1.7)
            add(rid, "pod_memory_utilization", mem)
            add(rid, "pod_cpu_utilization", cpu)
            add(rid, "pod_cpu_utilization_over_pod_limit", over)
            add(rid, "pod_number_of_container_restarts", restarts)
            add(rid, "service_number_of_running_pods", pods)

    # --- feed-driven and stage-driven symptoms on jobs -----------------------------------------------------
    for job in jobs:
        if root in job["feeds"]:
            ingest = [s["id"] for s in job["stages"] if s["type"] == "ingest" or not s["depends_on"]]
            if kind == "network_latency":
                for st in ingest:
                    hit_stage(st, slow=2.0)
            elif kind == "volume_spike":
                for s in job["stages"]:
                    hit_stage(s["id"], slow=1.6, records=3.0)
                hit_job(job["id"], records=3.0)
                for s in job["stages"]:
                    if s["id"] in ingest:
                        for r in s["resources"]:
                            if r.startswith("sqs:"):
                                affected_stages.setdefault("__sqs__", {})[r] = 1.0
            elif kind == "delayed_market_data":
                hit_job(job["id"], delay=1200.0)
            elif kind == "feed_outage":
                hit_job(job["id"], delay=1800.0, fail=1.0)
                for st in ingest:
                    hit_stage(st, fail=1.0)
        if kind == "job_failure" and any(s["id"] == root for s in job["stages"]):
            hit_stage(root, fail=1.0, retries=2.0)
    for job in jobs:
        stage_ids = {s["id"] for s in job["stages"]}
        if any(st in stage_ids and eff.get("fail") for st, eff in affected_stages.items()):
            hit_job(job["id"], fail=1.0)
        if any(st in stage_ids and eff.get("slow") for st, eff in affected_stages.items()):
            hit_job(job["id"], slow=1.5)

    # queues back up in a volume spike
    for q in affected_stages.pop("__sqs__", {}):
        for fr in frames:
            if fr["entity"].iloc[0] == q and fr["metric"].iloc[0] == "ApproximateNumberOfMessagesVisible":
                fr.loc[np.arange(n) >= k0 + 5, "value"] *= 5

    if decoy:
        frames_by = {(fr["entity"].iloc[0], fr["metric"].iloc[0]): fr for fr in frames}
        choices = [
            (e, mtr, f)
            for (e, mtr), f in (
                *(((f"feed:{x['id']}", "latency_ms"), 1.8) for x in onto["feeds"]),
                *(((r["id"], "CPUUtilization"), 1.6) for r in onto["resources"] if r["kind"] == "rds"),
                *(((r["id"], "Duration"), 2.0) for r in onto["resources"] if r["kind"] == "lambda"),
                *(
                    ((r["id"], "pod_cpu_utilization"), 1.5)
                    for r in onto["resources"]
                    if r["kind"] == "eks_namespace"
                ),
            )
            if e != root
        ]
        e, mtr, f = choices[int(rng.integers(len(choices)))]
        k1 = HISTORY_MIN + int(rng.integers(0, 30))
        frames_by[(e, mtr)].loc[np.arange(n) >= k1, "value"] *= f
        # back-pressure: databases used by affected stages see their load change a little later
        loaded = sorted(
            {
                r
                for job in jobs
                for s in job["stages"]
                if s["id"] in affected_stages
                for r in s["resources"]
                if r.startswith("rds:") and r != root
            }
        )
        for r in loaded:
            k2 = k0 + 8
            for metric in ("DatabaseConnections", "conn_ratio"):
                frames_by[(r, metric)].loc[np.arange(n) >= k2, "value"] *= 1.35
            frames_by[(r, "ReadLatency")].loc[np.arange(n) >= k2, "value"] *= 1.5

    # --- batch series: one point per run (daily at 21:xx), the incident run just after the fault ----------
    run_times = [
        START + pd.Timedelta(minutes=int(rng.integers(5, 40))) - pd.Timedelta(days=d)
        for d in range(RUNS, 0, -1)
    ]
    incident_time = START + pd.Timedelta(minutes=int(k0 - HISTORY_MIN) + 10)
    times = pd.DatetimeIndex(run_times + [incident_time])
    m = len(times)
    for job in jobs:
        jeff = affected_jobs.get(job["id"], {})
        total = 0.0
        for s in job["stages"]:
            eff = affected_stages.get(s["id"], {})
            dur = s["minutes"] * 60 * (1 + 0.06 * rng.standard_normal(m))
            dur[-1] *= eff.get("slow", 1.0)
            failed = np.zeros(m)
            failed[-1] = eff.get("fail", 0.0)
            retries = rng.binomial(1, 0.05, m).astype(float)
            retries[-1] = max(retries[-1], eff.get("retries", 2.0 if eff.get("fail") else 0.0))
            records = job["records"] * (1 + 0.03 * rng.standard_normal(m))
            records[-1] *= eff.get("records", 1.0)
            stimes = times + pd.Timedelta(seconds=float(total))
            total += float(np.median(dur))
            add(s["id"], "duration_s", dur, stimes)
            add(s["id"], "failed", failed, stimes)
            add(s["id"], "retries", retries, stimes)
            add(s["id"], "records", records, stimes)
        delay = np.abs(rng.normal(30, 10, m))
        delay[-1] += jeff.get("delay", 0.0)
        jdur = total * (1 + 0.05 * rng.standard_normal(m))
        jdur[-1] *= jeff.get("slow", 1.0)
        jfailed = np.zeros(m)
        jfailed[-1] = jeff.get("fail", 0.0)
        jrec = job["records"] * (1 + 0.03 * rng.standard_normal(m))
        jrec[-1] *= jeff.get("records", 1.0)
        jtimes = (
            times
            + pd.Timedelta(seconds=float(total))
            + pd.Timedelta(seconds=float(delay[-1]) if False else 0)
        )
        add(job["id"], "start_delay_s", delay, jtimes)
        add(job["id"], "duration_s", jdur, jtimes)
        add(job["id"], "failed", jfailed, jtimes)
        add(job["id"], "records", jrec, jtimes)

    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["entity", "metric", "time"], kind="stable").reset_index(drop=True)


CASES = [
    ("connection_pool_exhaustion", "rds:positions-db"),
    ("memory_leak", "eks:markets-prod/pricing"),
    ("network_latency", "feed:bloomberg-bpipe"),
    ("delayed_market_data", "feed:cme-mdp"),
    ("volume_spike", "feed:ice-data"),
    ("capacity_constraint", "eks:markets-prod/risk-engine"),
    ("job_failure", "stage:derivatives.eod_valuation.valuation"),
    ("feed_outage", "feed:ebs-fx"),
]
