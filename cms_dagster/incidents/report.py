"""Incident reports: one per incident (confirmed alarm episodes that are one problem, grouped by
:mod:`cms_dagster.incidents.grouping`), with a stable id, causes, blast radius and narrative.

- **Id.** ``inc-YYYYMMDD-HHMM-<hash>``: the time of the incident's first alarm and a hash of the entity it
  fired on. Later alarms and episodes join without changing either, and re-scoring the same data (a
  back-fill, a re-run) finds the same first alarm: the same incident gets the same id.
- **Status.** ``open`` while episodes may still join (the detector has scored less than the grouping's
  ``far`` past the last alarm, or a run the incident may have hit, begun by then, is still under way: its
  verdict comes when it finishes), then ``closed`` with ``end`` = the last alarm.
- **Causes.** :func:`cms_dagster.rca.incident.analyse_incident` from the episode's start, the same code
  ``cms rca incident`` and ``benchmarks/rca_eval.py`` run; each evidence item gets an id (``E1``, ...).
- **Blast radius.** From the ontology: what depends on the top cause (feeds, jobs, stages, their SLAs)
  and the affected jobs' runs of the incident's day that failed, missed, or are projected to miss their
  deadline (``fct_batch_runs``).
- **Remediation.** The ontology's runbook steps for the top cause's kind.
- **Narrative.** :func:`cms_dagster.incidents.narrative.write_narrative` (LLM or offline, checked).

Plain Python (pandas); no Dagster.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any

import pandas as pd

from cms_dagster.detect.episodes import ALARMS_SQL, Episode, episodes_between
from cms_dagster.domain.model import Ontology
from cms_dagster.incidents.grouping import DEFAULT_FAR, incidents_between
from cms_dagster.incidents.narrative import write_narrative
from cms_dagster.llm import Llm
from cms_dagster.rca.incident import IncidentAnalysis, analyse_incident
from cms_dagster.rca.validate import RcaInputError

__all__ = [
    "blast_radius",
    "build_report",
    "confirmed_episodes",
    "confirmed_incidents",
    "episode_status",
    "find_episode",
    "incident_id",
    "incident_start",
    "scored_until",
    "to_markdown",
]

Query = Callable[[str, list], pd.DataFrame]
TOP_CAUSES = 5
EVIDENCE_PER_CAUSE = 4


def iso_time(ts: pd.Timestamp | None) -> str | None:
    """``2026-11-25T20:00:00Z``; None for a missing time."""
    if ts is None or pd.isna(ts):
        return None
    return _utc(ts).isoformat().replace("+00:00", "Z")


def _utc(t: Any) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def incident_id(episode: Episode) -> str:
    """The stable id of the incident an episode is: its first alarm's minute and entity."""
    start = _utc(episode.start)
    digest = hashlib.sha256(episode.entities[0].encode()).hexdigest()[:6]
    return f"inc-{start:%Y%m%d-%H%M}-{digest}"


def incident_start(incident: str) -> pd.Timestamp:
    """The minute an incident id says it started (raises ValueError for a malformed id)."""
    try:
        _, day, hhmm, _ = incident.split("-")
        return pd.Timestamp(dt.datetime.strptime(day + hhmm, "%Y%m%d%H%M"), tz="UTC")
    except ValueError:
        raise ValueError(f"{incident!r} is not an incident id (inc-YYYYMMDD-HHMM-xxxxxx): `cms incidents list` shows them") from None


def scored_until(query: Query) -> pd.Timestamp | None:
    """The latest time the detector has scored (data time, so a back-filled week reads like a live one)."""
    try:
        last = query("select max(ts) as ts from intelligence.anomalies", [])["ts"].iloc[0]
    except Exception as exc:  # no table yet
        if "anomalies" in str(exc).lower():
            return None
        raise
    return None if last is None or pd.isna(last) else _utc(last)


def episode_status(episode: Episode, until: pd.Timestamp | None, gap: pd.Timedelta = DEFAULT_FAR) -> str:
    """``closed`` once the detector has scored more than ``gap`` past the last alarm and no run that the
    incident may have hit is still under way (an incident's ``running``,
    :class:`cms_dagster.incidents.grouping.IncidentEpisode`): no episode can join the incident any more.
    Else ``open``."""
    quiet = until is not None and until - _utc(episode.end) > gap
    return "closed" if quiet and not getattr(episode, "running", ()) else "open"


def confirmed_episodes(
    query: Query, since: dt.datetime, until: dt.datetime, ontology: Ontology, **options: Any
) -> list[Episode]:
    """The confirmed episodes whose alarms fall in [since, until), oldest first."""
    eps = episodes_between(query, since, until, ontology.dependency_edges(), **options)
    return [e for e in eps if e.confirmed]


def confirmed_incidents(query: Query, since: dt.datetime, until: dt.datetime, ontology: Ontology, **options: Any) -> list[Episode]:
    """The incidents with alarms in [since, until), oldest first, each as one episode
    (:meth:`cms_dagster.incidents.grouping.Incident.as_episode`); ``options`` go to
    :func:`cms_dagster.incidents.grouping.incidents_between`."""
    return [i.as_episode() for i in incidents_between(query, since, until, ontology, **options)]


def find_episode(query: Query, incident: str, ontology: Ontology, until: pd.Timestamp | None = None) -> Episode | None:
    """The incident ``incident`` as one episode, or None (its alarms read up to two days after its start)."""
    start = incident_start(incident)
    hi = start + pd.Timedelta(days=2)
    if until is not None:
        hi = min(hi, until + pd.Timedelta(seconds=1))
    for e in confirmed_incidents(query, start.to_pydatetime(), hi.to_pydatetime(), ontology):
        if incident_id(e) == incident:
            return e
    return None


def _dependents(ontology: Ontology, entity: str) -> set[str]:
    """Everything that depends on ``entity``, directly or through others."""
    up: dict[str, set[str]] = {}
    for src, dst in ontology.dependency_edges():
        up.setdefault(dst, set()).add(src)
    seen, todo = set(), [entity]
    while todo:
        for s in up.get(todo.pop(), ()):
            if s not in seen:
                seen.add(s)
                todo.append(s)
    return seen


def blast_radius(
    ontology: Ontology, entity: str, query: Query | None = None, at: pd.Timestamp | None = None, marts_schema: str = "marts"
) -> dict[str, Any]:
    """What depends on ``entity`` (feeds, jobs, stages, their SLAs) and, with ``query`` and ``at``, the
    affected jobs' runs of that day that failed, missed, or are projected to miss their deadline."""
    hit = _dependents(ontology, entity) | {entity}
    jobs = [j for j in ontology.jobs.values() if j.entity_id in hit]
    feeds = [entity] if entity.startswith("feed:") else []
    stages = sorted(s for s in hit if s.startswith("stage:"))
    slas = [{"job": j.entity_id, "sla_minutes": j.sla_minutes, "schedule": j.schedule} for j in jobs]
    slas += [
        {"feed": f"feed:{fid}", "staleness_sla_s": f.staleness_sla_s}
        for fid, f in ontology.feeds.items()
        if f"feed:{fid}" in feeds
    ]
    runs: list[dict[str, Any]] = []
    if query is not None and at is not None and jobs:
        runs = _runs_at_risk(query, jobs, at, marts_schema)
    return {
        "entity": entity,
        "feeds": feeds,
        "jobs": sorted(j.entity_id for j in jobs),
        "stages": stages,
        "slas": slas,
        "runs": runs,
    }


def _runs_at_risk(query: Query, jobs: list, at: pd.Timestamp, marts_schema: str) -> list[dict[str, Any]]:
    keys = {j.key: j for j in jobs}
    day = _utc(at).normalize()
    marks = ", ".join("?" for _ in keys)
    sql = (
        "select job_key, run_id, scheduled_start_ts, actual_start_ts, actual_end_ts, status, sla_deadline_ts, "
        f"is_sla_breached from {marts_schema}.fct_batch_runs where job_key in ({marks}) "
        "and scheduled_start_ts >= ? and scheduled_start_ts < ? order by scheduled_start_ts, job_key"
    )
    try:
        df = query(sql, [*keys, day.tz_localize(None).to_pydatetime(), (day + pd.Timedelta(days=1)).tz_localize(None).to_pydatetime()])
    except Exception:  # marts not built yet: the radius still names jobs and SLAs
        return []
    out = []
    for r in df.itertuples(index=False):
        job = keys[r.job_key]
        expected = pd.Timedelta(minutes=sum(s.minutes for s in job.stages))
        deadline = _utc(r.sla_deadline_ts) if not pd.isna(r.sla_deadline_ts) else None
        if r.status == "failed":
            verdict = "failed"
        elif bool(r.is_sla_breached):
            verdict = "missed"
        elif r.status == "running" and deadline is not None and not pd.isna(r.actual_start_ts) and _utc(r.actual_start_ts) + expected > deadline:
            verdict = "projected to miss"
        else:
            verdict = "on time"
        if _utc(r.scheduled_start_ts) + pd.Timedelta(days=1) < _utc(at):
            continue
        out.append(
            {
                "job": job.entity_id,
                "run_id": str(r.run_id),
                "scheduled": iso_time(_utc(r.scheduled_start_ts)),
                "deadline": iso_time(deadline),
                "status": str(r.status),
                "verdict": verdict,
                "projected_miss": verdict != "on time",
            }
        )
    return out


def _confidences(analysis: IncidentAnalysis, top: int) -> list[float]:
    scores = [max(h.score, 0.0) for h in analysis.hypotheses[:top]]
    total = sum(scores) or 1.0
    return [round(s / total, 3) for s in scores]


def _evidence_items(analysis: IncidentAnalysis) -> tuple[list[dict[str, Any]], list[list[str]]]:
    items: list[dict[str, Any]] = []
    ids_per_cause: list[list[str]] = []
    for h in analysis.hypotheses[:TOP_CAUSES]:
        mine = []
        for e in sorted(h.evidence, key=lambda e: -abs(e.z) if e.z == e.z else 0)[:EVIDENCE_PER_CAUSE]:
            eid = f"E{len(items) + 1}"
            mine.append(eid)
            d = e.to_dict()
            items.append(
                {
                    "id": eid,
                    "entity": e.node,
                    "metric": e.metric,
                    "series": f"{e.node}|{e.metric}",
                    "window": {"from": d["moved_at"] or d["peak_at"], "peak": d["peak_at"]},
                    "observed": d["observed"],
                    "usual": d["baseline"],
                    "z": None if d["z"] is None else round(d["z"], 2),
                    "direction": e.direction,
                }
            )
        ids_per_cause.append(mine)
    return items, ids_per_cause


def _alarm_rows(query: Query, episode: Episode) -> pd.DataFrame:
    lo = _utc(episode.start).tz_localize(None).to_pydatetime()
    hi = (_utc(episode.end) + pd.Timedelta(seconds=1)).tz_localize(None).to_pydatetime()
    rows = query(ALARMS_SQL, [lo, hi])
    return rows[rows["series"].astype(str).isin(set(episode.series))]


def _timeline(episode: Episode, alarms: pd.DataFrame, evidence: list[dict[str, Any]], radius: dict[str, Any], status: str) -> list[dict[str, Any]]:
    events: list[tuple[str, str]] = []
    if len(alarms):
        first = alarms.sort_values("ts").groupby("entity_id", sort=False).head(1)
        for r in first.itertuples(index=False):
            events.append((iso_time(_utc(r.ts)), f"first alarm on {r.entity_id} ({r.metric}, score {float(r.score):.2f})"))
    for e in evidence[:3]:
        if e["window"]["from"]:
            events.append((e["window"]["from"], f"{e['metric']} of {e['entity']} starts to move [{e['id']}]"))
    for r in radius.get("runs", []):
        if r["projected_miss"] and r["deadline"]:
            events.append((r["deadline"], f"deadline of {r['job']} run {r['run_id']}: {r['verdict']}"))
    if status == "closed":
        events.append((iso_time(_utc(episode.end)), f"last alarm; episode closed after {episode.alarms} alarms"))
    elif getattr(episode, "running", ()):
        events.append(
            (iso_time(_utc(episode.end)), f"last alarm so far; open while runs it may have hit are under way: {', '.join(episode.running)}")
        )
    return [{"at": at, "event": what} for at, what in sorted(events)]


def build_report(
    query: Query,
    episode: Episode,
    ontology: Ontology,
    llm: Llm,
    *,
    until: pd.Timestamp | None = None,
    marts_schema: str = "marts",
) -> dict[str, Any]:
    """The incident report of a confirmed ``episode`` as of ``until`` (the detector's latest scored time)."""
    iid = incident_id(episode)
    status = episode_status(episode, until)
    warnings: list[str] = []
    try:
        analysis = analyse_incident(query, episode.start, ontology=ontology, marts_schema=marts_schema)
        warnings += list(analysis.warnings)
    except RcaInputError as exc:
        analysis = None
        warnings.append(str(exc))
    evidence, ids_per_cause = _evidence_items(analysis) if analysis else ([], [])
    conf = _confidences(analysis, TOP_CAUSES) if analysis else []
    causes = [
        {
            "rank": h.rank,
            "entity": h.entity,
            "kind": h.kind,
            "score": round(h.score, 4),
            "confidence": conf[i],
            "reason": h.reason,
            "evidence_ids": ids_per_cause[i],
        }
        for i, h in enumerate(analysis.hypotheses[:TOP_CAUSES] if analysis else [])
    ]
    root = causes[0] if causes else {"entity": episode.entities[0], "kind": "unknown"}
    radius = blast_radius(ontology, root["entity"], query, _utc(episode.start), marts_schema)
    alarms = _alarm_rows(query, episode)
    pack = {
        "incident_id": iid,
        "start": iso_time(_utc(episode.start)),
        "status": status,
        "alarms": episode.alarms,
        "entities": list(episode.entities),
        "candidates": causes,
        "evidence": evidence,
        "blast_radius": radius,
        "remediation": ontology.remediation(root["kind"]),
    }
    outcome = write_narrative(llm, pack)
    report = {
        "id": iid,
        "start": pack["start"],
        "end": iso_time(_utc(episode.end)) if status == "closed" else None,
        "status": status,
        "as_of": iso_time(until) if until is not None else None,
        "episode": episode.to_dict(),
        "root_cause": {"entity": root["entity"], "kind": root["kind"]},
        "causes": causes,
        "evidence": evidence,
        "blast_radius": radius,
        "timeline": _timeline(episode, alarms, evidence, radius, status),
        "remediation": pack["remediation"],
        "narrative": outcome.narrative,
        "narrative_meta": outcome.to_dict(),
        "warnings": warnings,
    }
    return report


def _md(text: Any) -> str:
    """Data strings as inert Markdown: no code spans, links, HTML or line breaks of their own."""
    s = " ".join(str(text).split())
    for ch in "\\`*_[]<>#|":
        s = s.replace(ch, "\\" + ch)
    return s


def to_markdown(report: dict[str, Any]) -> str:
    """The report for the Dagster UI (asset metadata) and ``cms incidents show``."""
    n = report["narrative"]
    meta = report.get("narrative_meta") or {}
    lines = [
        f"## Incident {report['id']} ({report['status']})",
        "",
        f"**Start** {report['start']}  **End** {report['end'] or 'open'}  **As of** {report.get('as_of') or '-'}",
        "",
        f"**Summary.** {_md(n['summary'])}",
        "",
        f"**Root cause (ranking).** {_md(report['root_cause']['entity'])} — {_md(report['root_cause']['kind'])}",
    ]
    if meta.get("disagreement"):
        lines.append(f"*Narrative disagreed:* {_md(meta['disagreement'])}")
    if meta.get("fallback_reason"):
        lines.append(f"*Offline narrative used:* {_md(meta['fallback_reason'])}")
    lines += ["", "### Causes", "", "| rank | entity | kind | confidence | evidence |", "|---|---|---|---|---|"]
    for c in report["causes"]:
        lines.append(f"| {c['rank']} | {_md(c['entity'])} | {_md(c['kind'])} | {c['confidence']} | {', '.join(c['evidence_ids'])} |")
    lines += ["", "### Evidence", "", "| id | series | from | observed | usual | z |", "|---|---|---|---|---|---|"]
    for e in report["evidence"]:
        lines.append(f"| {e['id']} | {_md(e['series'])} | {e['window']['from'] or '-'} | {e['observed']} | {e['usual']} | {e['z']} |")
    r = report["blast_radius"]
    lines += [
        "",
        "### Blast radius",
        "",
        f"- feeds: {', '.join(_md(x) for x in r['feeds']) or 'none'}",
        f"- jobs: {', '.join(_md(x) for x in r['jobs']) or 'none'}",
        f"- stages: {len(r['stages'])}",
    ]
    for run in r.get("runs", []):
        if run["projected_miss"]:
            lines.append(f"- run {_md(run['run_id'])} of {_md(run['job'])}: {run['verdict']} (deadline {run['deadline']})")
    lines += ["", f"**Impact.** {_md(n['impact'])}", "", "### Timeline", ""]
    lines += [f"- {t['at']} {_md(t['event'])}" for t in report["timeline"]]
    lines += ["", "### Remediation", ""] + [f"{i}. {_md(s)}" for i, s in enumerate(n["remediation"] or report["remediation"], 1)]
    lines += ["", "### Next checks", ""] + [f"- {_md(s)}" for s in n["next_checks"]]
    lines += ["", f"_Narrative: {meta.get('engine')} ({meta.get('model')}), confidence {n['confidence']}_"]
    return "\n".join(lines)
