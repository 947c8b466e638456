"""Simulate a financial-ops estate: batch runs and their sub-stages, market-data feeds and the AWS
resources under them, with incidents whose effects propagate along the ontology.

The order of work follows causality: incidents shape feeds and resource health; feeds and resource
health shape when runs start, how long stages take and whether they fail; running stages shape the load
that CloudWatch sees (:mod:`cms_dagster.simulate.cloudwatch`). Everything is drawn from generators seeded by (seed, series name), so the same
arguments give the same bytes.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cms_dagster.domain.model import Job, Ontology, Stage
from cms_dagster.simulate.incidents import Incident

UTC = dt.timezone.utc
MAX_ATTEMPTS = 3
FEED_WAIT_LIMIT = dt.timedelta(minutes=60)


def rng_for(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


@dataclass
class StageAttempt:
    run_id: str
    asset_class: str
    job: str
    stage: Stage
    attempt: int
    start: dt.datetime
    end: dt.datetime
    status: str
    error_type: str
    records: int


@dataclass
class Run:
    run_id: str
    job: Job
    scheduled: dt.datetime
    start: dt.datetime
    end: dt.datetime
    status: str
    error_type: str
    records: int
    bytes: int
    attempts: list[StageAttempt] = field(default_factory=list)
    incidents: set[str] = field(default_factory=set)
    via: str = "raw"

    @property
    def deadline(self) -> dt.datetime:
        return self.scheduled + dt.timedelta(minutes=self.job.sla_minutes)

    @property
    def sla_breached(self) -> bool:
        """A run breaches its SLA when it has not succeeded by its deadline (late, or failed)."""
        return self.status != "success" or self.end > self.deadline


class Timeline:
    """Minute grid over the simulated period."""

    def __init__(self, start: dt.datetime, days: int) -> None:
        self.start = start
        self.n = days * 1440
        self.end = start + dt.timedelta(minutes=self.n)
        t0 = np.datetime64(start.replace(tzinfo=None), "m")
        self.minutes = t0 + np.arange(self.n).astype("timedelta64[m]")
        hours = (self.minutes.astype("datetime64[h]").astype(np.int64) % 24).astype(int)
        # numpy: 1970-01-01 was a Thursday -> weekday 0=Monday
        days_ = self.minutes.astype("datetime64[D]").astype(np.int64)
        self.weekday = ((days_ + 3) % 7).astype(int)
        self.hour = hours
        self.minute_of_day = (self.minutes.astype(np.int64) % 1440).astype(int)

    def index(self, t: dt.datetime) -> int:
        return int((t - self.start).total_seconds() // 60)

    def mask(self, a: dt.datetime, b: dt.datetime) -> np.ndarray:
        m = np.zeros(self.n, bool)
        i, j = max(0, self.index(a)), min(self.n, self.index(b))
        if j > i:
            m[i:j] = True
        return m

    def activity(self, fx: bool = False) -> np.ndarray:
        """Market activity in [0, 1]: trading-hours bump on weekdays, quiet weekends."""
        mod = self.minute_of_day / 60.0
        if fx:  # FX trades 24x5: Sunday 22:00 to Friday 22:00 UTC, busiest in the London/NY overlap
            open_ = ~(
                ((self.weekday == 4) & (mod >= 22)) | (self.weekday == 5) | ((self.weekday == 6) & (mod < 22))
            )
            base = 0.45 + 0.55 * np.exp(-(((mod - 14.5) / 4.0) ** 2))
            return np.where(open_, base, 0.03)
        weekday = self.weekday < 5
        bump = np.exp(-(((mod - 14.5) / 3.8) ** 2))
        base = np.where((mod >= 7) & (mod < 21.5), 0.25 + 0.75 * bump, 0.04)
        return np.where(weekday, base, 0.02)


@dataclass
class FeedSeries:
    up: np.ndarray
    latency_ms: np.ndarray
    staleness_s: np.ndarray
    messages: np.ndarray
    missing_fields: np.ndarray
    invalid_values: np.ndarray
    unavailable: np.ndarray  # minutes when dependent jobs cannot get the data they need
    volume_mult: np.ndarray
    latency_mult: np.ndarray


def simulate_feeds(
    ont: Ontology, tl: Timeline, incidents: list[Incident], seed: int
) -> dict[str, FeedSeries]:
    out = {}
    for fid, feed in ont.feeds.items():
        r = rng_for(seed, "feed", fid)
        act = tl.activity(fx=fid == "ebs-fx")
        up = np.ones(tl.n)
        lat_mult = np.ones(tl.n)
        vol_mult = np.ones(tl.n)
        delayed = np.zeros(tl.n, bool)
        for inc in incidents:
            if inc.root_cause != f"feed:{fid}":
                continue
            m = tl.mask(inc.start, inc.end)
            if inc.kind == "feed_outage":
                up[m] = 0
            elif inc.kind == "network_latency":
                lat_mult[m] = 8.0 * inc.severity
            elif inc.kind == "delayed_market_data":
                delayed |= m
            elif inc.kind == "volume_spike":
                vol_mult[m] = 4.5 * inc.severity
        msgs = feed.messages_per_min * act * vol_mult * r.lognormal(0, 0.08, tl.n)
        msgs = np.where(delayed, msgs * 0.15, msgs)
        msgs = np.where(up == 0, 0, np.round(msgs))
        latency = feed.latency_ms * (1 + 0.35 * act) * r.lognormal(0, 0.1, tl.n) * lat_mult
        latency = np.where(delayed, latency * 1.5, latency)
        # staleness: time since the last update; grows by 60 s a minute while nothing (useful) arrives
        base_stale = np.clip(
            60.0 / np.maximum(msgs, 1) * r.uniform(0.5, 2.0, tl.n), 0.05, feed.staleness_sla_s * 0.4
        )
        stale = base_stale.copy()
        run = 0.0
        blocked = (up == 0) | delayed
        for i in np.flatnonzero(blocked):
            run = stale[i - 1] + 60.0 if i > 0 and blocked[i - 1] else max(base_stale[i], 60.0)
            stale[i] = run
        missing = r.poisson(msgs * 2e-5 + 0.02)
        invalid = r.poisson(msgs * 8e-6 + 0.01)
        out[fid] = FeedSeries(
            up=up,
            latency_ms=np.round(latency, 2),
            staleness_s=np.round(stale, 2),
            messages=msgs,
            missing_fields=np.where(up == 0, 0, missing),
            invalid_values=np.where(up == 0, 0, invalid),
            unavailable=(up == 0) | delayed,
            volume_mult=vol_mult,
            latency_mult=lat_mult,
        )
    return out


def resource_slowdown(
    res_id: str, t: dt.datetime, incidents: list[Incident]
) -> tuple[float, str | None, Incident | None]:
    """How much slower work on ``res_id`` runs at ``t``, and an error work there may fail with."""
    for inc in incidents:
        if inc.root_cause != res_id or not inc.active(t):
            continue
        if inc.kind == "connection_pool_exhaustion":
            return 3.0, "ConnectionError", inc
        if inc.kind == "memory_leak":
            frac = (t - inc.start) / (inc.end - inc.start)
            return 1.0 + 1.8 * frac, None, inc
        if inc.kind == "capacity_constraint":
            return 2.6, None, inc
    return 1.0, None, None


def simulate_runs(
    ont: Ontology,
    tl: Timeline,
    feeds: dict[str, FeedSeries],
    incidents: list[Incident],
    seed: int,
) -> list[Run]:
    runs: list[Run] = []
    for job in ont.jobs.values():
        r = rng_for(seed, "job", job.key)
        stages = job.topo_stages()
        for sched in job.cron.times(tl.start, tl.end):
            sched = sched.replace(tzinfo=UTC)
            run_id = f"{job.key}.{sched:%Y-%m-%dT%H:%M}"
            touched: set[str] = set()
            start = sched + dt.timedelta(seconds=float(r.uniform(15, 90)))
            # feeds: wait while a needed feed is down or delayed (up to FEED_WAIT_LIMIT)
            wait_fail = None
            for fid in job.feeds:
                fs = feeds[fid]
                i = tl.index(start)
                if 0 <= i < tl.n and fs.unavailable[i]:
                    j = i
                    while j < tl.n and fs.unavailable[j]:
                        j += 1
                    resume = (
                        tl.start + dt.timedelta(minutes=j) + dt.timedelta(seconds=float(r.uniform(60, 240)))
                    )
                    touched |= {
                        inc.id for inc in incidents if inc.root_cause == f"feed:{fid}" and inc.active(start)
                    }
                    if resume - sched > FEED_WAIT_LIMIT:
                        wait_fail = fid
                        start = max(start, sched + FEED_WAIT_LIMIT)
                    else:
                        start = max(start, resume)
            vol = (
                max(float(feeds[f].volume_mult[min(tl.n - 1, max(0, tl.index(start)))]) for f in job.feeds)
                if job.feeds
                else 1.0
            )
            if vol > 1:
                touched |= {
                    inc.id
                    for inc in incidents
                    if inc.kind == "volume_spike"
                    and inc.root_cause in {f"feed:{f}" for f in job.feeds}
                    and inc.active(start)
                }
            lat = (
                max(float(feeds[f].latency_mult[min(tl.n - 1, max(0, tl.index(start)))]) for f in job.feeds)
                if job.feeds
                else 1.0
            )
            day_factor = 1.0 if sched.weekday() < 5 else 0.6
            records = int(job.records * day_factor * vol * r.lognormal(0, 0.05))
            ends: dict[str, dt.datetime] = {}
            failed: tuple[str, str] | None = None
            run = Run(
                run_id, job, sched, start, start, "success", "", records, int(records * r.uniform(380, 460))
            )
            for st in stages:
                if failed:
                    break
                ready = max([ends[d] for d in st.depends_on], default=start)
                t = ready + dt.timedelta(seconds=float(r.uniform(3, 20)))
                for attempt in range(1, MAX_ATTEMPTS + 1):
                    factor, err, inc_r = 1.0, None, None
                    for res in st.resources:
                        f_, e_, i_ = resource_slowdown(res, t, incidents)
                        if f_ > factor or e_:
                            factor, err, inc_r = max(factor, f_), e_ or err, i_ or inc_r
                    if inc_r is not None:
                        touched.add(inc_r.id)
                        inc_r.affected_stages.add(st.entity_id)
                    if st.reads_feeds and lat > 1:  # a slow feed slows the stages that read it
                        factor *= 1 + 0.22 * lat
                        touched |= {
                            inc.id
                            for inc in incidents
                            if inc.kind == "network_latency"
                            and inc.root_cause in {f"feed:{f}" for f in job.feeds}
                            and inc.active(start)
                        }
                    vol_f = (
                        vol**0.7
                        if st.type in ("ingest", "validation", "transformation", "valuation", "loading")
                        else 1.0
                    )
                    dur = (
                        st.minutes
                        * 60
                        * float(r.lognormal(0, 0.07))
                        * factor
                        * vol_f
                        * (0.75 + 0.25 * day_factor)
                    )
                    status, etype = "success", ""
                    stage_fail = next(
                        (
                            inc
                            for inc in incidents
                            if inc.kind == "job_failure" and inc.root_cause == st.entity_id and inc.active(t)
                        ),
                        None,
                    )
                    if wait_fail and st.reads_feeds:
                        status, etype, dur = "failed", "UpstreamDataMissing", float(r.uniform(20, 60))
                    elif stage_fail is not None:
                        status, etype, dur = "failed", "DataQualityError", dur * 0.5
                        touched.add(stage_fail.id)
                    elif err and r.random() < 0.75:
                        status, etype, dur = "failed", err, min(dur, 300.0)
                    elif r.random() < 0.004:  # transient glitch that a retry fixes
                        status, etype, dur = "failed", "TransientError", dur * 0.3
                    end = t + dt.timedelta(seconds=dur)
                    rec = (
                        0
                        if status == "failed"
                        else int(records * (0.985 if st.type == "validation" else 1.0))
                    )
                    run.attempts.append(
                        StageAttempt(run_id, job.asset_class, job.id, st, attempt, t, end, status, etype, rec)
                    )
                    if status == "success":
                        ends[st.id] = end
                        break
                    if etype == "UpstreamDataMissing" or attempt == MAX_ATTEMPTS:
                        failed = (st.id, etype)
                        ends[st.id] = end
                        break
                    t = end + dt.timedelta(seconds=30 * attempt)
            run.end = max(ends.values())
            if failed:
                run.status, run.error_type, run.records, run.bytes = "failed", failed[1], 0, 0
            run.incidents = touched
            runs.append(run)
    runs.sort(key=lambda x: (x.start, x.run_id))
    for run in runs:
        for inc in incidents:
            if inc.id in run.incidents:
                inc.affected_jobs.add(run.job.entity_id)
                if inc.kind == "job_failure":
                    inc.affected_stages.add(inc.root_cause)
                inc.affected_feeds |= {f"feed:{f}" for f in run.job.feeds if inc.root_cause == f"feed:{f}"}
    return runs


def stage_load(tl: Timeline, runs: list[Run]) -> dict[str, np.ndarray]:
    """Per resource and minute: how many stage attempts were running on it (fractional minutes)."""
    load: dict[str, np.ndarray] = {}
    for run in runs:
        for a in run.attempts:
            i = (a.start - tl.start).total_seconds() / 60
            j = (a.end - tl.start).total_seconds() / 60
            lo, hi = max(0, int(i)), min(tl.n, int(np.ceil(j)))
            for res in a.stage.resources:
                arr = load.setdefault(res, np.zeros(tl.n))
                if hi > lo:
                    arr[lo:hi] += 1.0
    return load


def run_summary(runs: list[Run]) -> dict[str, Any]:
    return {
        "runs": len(runs),
        "failed": sum(r.status == "failed" for r in runs),
        "sla_breaches": sum(r.sla_breached for r in runs),
        "stage_attempts": sum(len(r.attempts) for r in runs),
    }
