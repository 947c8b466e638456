"""Symptoms worth a page, read from the warehouse's marts; anomaly episodes without one, as warnings.

SRE practice: page on what users of the data feel, not on every cause. Here that is

- a **feed interrupted or stale past its SLA** (``fct_feed_status``: down, or ``staleness_s`` over the feed's
  ``staleness_sla_s`` from the ontology) for at least ``FEED_MINUTES`` minutes in a row: one alert per
  outage, resolved at the first good minute after it;
- a **batch run failed**, **finished past its deadline**, or **projected to miss it** (still running and its
  start plus the job's expected duration, from the ontology, is past the deadline) (``fct_batch_runs``):
  one alert per run, resolved when a later run of the job succeeds (a failure) or when it finishes;
- a **failing asset check of severity ERROR** (from Dagster; :func:`check_alert` builds it).

A confirmed alarm episode that coincides with none of these is an ``anomaly`` alert at warning level: it
is recorded, listed and shown, but does not page. Alerts carry the incident id of the episode they fall in.
All times are data times. Plain Python; no Dagster.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pandas as pd

from cms_dagster.alerts.rules import Alert, _iso
from cms_dagster.detect.episodes import Episode
from cms_dagster.detect.sla import SLA_MINUTES
from cms_dagster.domain.model import Ontology

__all__ = ["FEED_MINUTES", "check_alert", "episode_alerts", "symptom_alerts"]

Query = Callable[[str, list], pd.DataFrame]
FEED_MINUTES = SLA_MINUTES  # a feed must be down or stale this many minutes in a row to page (as it alarms)
NEAR = pd.Timedelta(minutes=30)  # a symptom and an episode this close in time, on related entities, are one


def _utc(t: Any) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _naive(t: dt.datetime | pd.Timestamp) -> dt.datetime:
    return _utc(t).tz_localize(None).to_pydatetime()


def _asset_link(dagster_url: str, asset: str) -> str:
    return f"{dagster_url}/assets/{asset}"


def feed_alerts(query: Query, ontology: Ontology, since: dt.datetime, until: dt.datetime, *, marts_schema: str = "marts", dagster_url: str = "") -> list[Alert]:
    df = query(
        f"select feed_id, minute_ts, is_up, staleness_s from {marts_schema}.fct_feed_status "
        "where minute_ts >= ? and minute_ts < ? order by feed_id, minute_ts",
        [_naive(since), _naive(until)],
    )
    out = []
    for feed_id, g in df.groupby("feed_id", sort=True):
        feed = ontology.feeds.get(str(feed_id))
        sla = float(feed.staleness_sla_s) if feed else float("inf")
        bad = (~g["is_up"].astype(bool)) | (g["staleness_s"].astype(float) > sla)
        times = pd.to_datetime(g["minute_ts"]).tolist()
        run: list[pd.Timestamp] = []
        flags = bad.tolist()
        for i, (t, b) in enumerate(zip(times, flags, strict=True)):
            if b:
                run.append(t)
            if (not b or i == len(flags) - 1) and run:
                if len(run) >= FEED_MINUTES:
                    start = _utc(run[0])
                    resolved = _utc(t) if not b else None
                    jobs = [j.entity_id for j in ontology.jobs_needing_feed(str(feed_id))]
                    down = not g.loc[g["minute_ts"] == run[0], "is_up"].astype(bool).iloc[0]
                    what = "interrupted" if down else f"stale past its {int(sla)} s SLA"
                    out.append(
                        Alert(
                            dedup_key=f"feed:{feed_id}:{start:%Y-%m-%dT%H:%MZ}",
                            source="feed",
                            severity="critical",
                            summary=f"feed {feed_id} {what}",
                            at=_iso(start),
                            labels={"feed": str(feed_id), "team": "market-data", "asset": "dbt/fct_feed_status"},
                            resolved_at=_iso(resolved),
                            link=_asset_link(dagster_url, "dbt/fct_feed_status"),
                            details={"minutes": len(run), "jobs_needing_it": jobs, "staleness_sla_s": sla},
                        )
                    )
                run = []
    return out


def run_alerts(query: Query, ontology: Ontology, since: dt.datetime, until: dt.datetime, *, marts_schema: str = "marts", dagster_url: str = "") -> list[Alert]:
    df = query(
        "select job_key, run_id, status, scheduled_start_ts, actual_start_ts, actual_end_ts, sla_deadline_ts, "
        f"is_sla_breached from {marts_schema}.fct_batch_runs where scheduled_start_ts >= ? and scheduled_start_ts < ? "
        "order by scheduled_start_ts, job_key",
        [_naive(since - dt.timedelta(days=1)), _naive(until)],
    )
    now = _utc(until)
    out = []
    later_success: dict[str, list[pd.Timestamp]] = {}
    for r in df.itertuples(index=False):
        if r.status == "success" and not pd.isna(r.actual_end_ts):
            later_success.setdefault(r.job_key, []).append(_utc(r.actual_end_ts))
    for r in df.itertuples(index=False):
        job = ontology.jobs.get(str(r.job_key))
        if job is None:
            continue
        deadline = None if pd.isna(r.sla_deadline_ts) else _utc(r.sla_deadline_ts)
        expected = pd.Timedelta(minutes=sum(s.minutes for s in job.stages))
        labels = {"job": job.entity_id, "asset_class": job.asset_class, "feeds": ",".join(job.feeds), "team": job.asset_class, "asset": "dbt/fct_batch_runs"}
        if r.status == "failed":
            at = _utc(r.actual_end_ts) if not pd.isna(r.actual_end_ts) else _utc(r.scheduled_start_ts)
            fixed = [t for t in later_success.get(r.job_key, []) if t > at]
            kind, what, resolved = "failed", f"run {r.run_id} of {job.key} failed", (min(fixed) if fixed else None)
        elif bool(r.is_sla_breached) and deadline is not None:
            end = None if pd.isna(r.actual_end_ts) else _utc(r.actual_end_ts)
            at, kind, what, resolved = deadline, "late", f"run {r.run_id} of {job.key} missed its {job.sla_minutes} min SLA", end
        elif r.status == "running" and deadline is not None and not pd.isna(r.actual_start_ts) and _utc(r.actual_start_ts) + expected > deadline:
            at, kind, resolved = _utc(r.actual_start_ts), "late", None
            what = f"run {r.run_id} of {job.key} projected to miss its deadline {_iso(deadline)}"
        else:
            continue
        if at < _utc(since) or at >= now:
            continue
        out.append(
            Alert(
                dedup_key=f"run:{r.run_id}:{kind}",
                source="batch_run",
                severity="critical",
                summary=what,
                at=_iso(at),
                labels=labels,
                resolved_at=_iso(resolved) if resolved is not None and resolved <= now else None,
                link=_asset_link(dagster_url, "dbt/fct_batch_runs"),
                details={"run_id": str(r.run_id), "deadline": _iso(deadline), "status": str(r.status)},
            )
        )
    return out


def _related(episode: Episode, alert: Alert, ontology: Ontology) -> bool:
    ents = set(episode.entities)
    if alert.label("feed") and f"feed:{alert.label('feed')}" in ents:
        return True
    if alert.label("job") and alert.label("job") in ents:
        return True
    feeds = alert.label("feeds").split(",") if alert.label("feeds") else []
    if any(f"feed:{f}" in ents for f in feeds):
        return True
    job = alert.label("job")
    return bool(job) and any(e.startswith("stage:" + job.split(":", 1)[1] + ".") for e in ents)


def episode_alerts(
    episodes: list[Episode], symptoms: list[Alert], ontology: Ontology, incident_id: Callable[[Episode], str], *,
    until: pd.Timestamp, gap: pd.Timedelta = NEAR, dagster_url: str = "", close_after: pd.Timedelta | None = None,
) -> tuple[list[Alert], list[Alert]]:
    """(symptom alerts with the incident id of the episode they fall in, warning alerts for confirmed
    episodes that coincide with no symptom). A warning resolves ``close_after`` (default ``gap``) past the
    episode's last alarm: for incidents, once no episode can join them any more."""
    close_after = gap if close_after is None else close_after
    tagged = []
    for s in symptoms:
        at = _utc(s.at)
        hit = next(
            (e for e in episodes if _utc(e.start) - gap <= at <= _utc(e.end) + gap and _related(e, s, ontology)), None
        )
        tagged.append(s if hit is None else replace(s, incident_id=incident_id(hit)))
    warnings = []
    for e in episodes:
        iid = incident_id(e)
        if any(t.incident_id == iid for t in tagged):
            continue
        closed = _utc(until) - _utc(e.end) > close_after
        warnings.append(
            Alert(
                dedup_key=f"anomaly:{iid}",
                source="anomaly",
                severity="warning",
                summary=f"unexplained anomaly: {e.alarms} alarms on {', '.join(e.entities[:3])}" + (" and more" if len(e.entities) > 3 else ""),
                at=_iso(_utc(e.start)),
                labels={"team": "operations", "asset": "intelligence/incident_report"},
                resolved_at=_iso(_utc(e.end) + close_after) if closed else None,
                incident_id=iid,
                link=f"{dagster_url}/assets/intelligence/incident_report?partition={iid}",
                details={"entities": list(e.entities), "peak_score": e.peak_score},
            )
        )
    return tagged, warnings


def symptom_alerts(query: Query, ontology: Ontology, since: dt.datetime, until: dt.datetime, *, marts_schema: str = "marts", dagster_url: str = "") -> list[Alert]:
    """The feed and batch-run symptoms of [since, until) as alerts."""
    return feed_alerts(query, ontology, since, until, marts_schema=marts_schema, dagster_url=dagster_url) + run_alerts(
        query, ontology, since, until, marts_schema=marts_schema, dagster_url=dagster_url
    )


def check_alert(
    asset: str, check: str, passed: bool, severity: str, at: str, *, first_failed_at: str | None = None,
    description: str = "", dagster_url: str = "",
) -> Alert | None:
    """The alert of one asset-check evaluation: a failing ERROR check pages (WARN checks give a warning);
    a passing one resolves the alert opened by its last failure (``first_failed_at``)."""
    if passed and first_failed_at is None:
        return None
    opened = first_failed_at or at
    return Alert(
        dedup_key=f"check:{asset}:{check}:{opened}",
        source="asset_check",
        severity="critical" if severity.upper() == "ERROR" else "warning",
        summary=f"asset check {check} on {asset} failed" + (f": {description}" if description else ""),
        at=opened,
        labels={"asset": asset, "team": "data-platform"},
        resolved_at=at if passed else None,
        link=f"{dagster_url}/assets/{asset}?view=checks",
        details={"check": check},
    )
