"""Incidents: the confirmed alarm episodes that are one problem, so that one problem gets one report.

A fault rarely alarms as one episode. A database whose pool is exhausted alarms on itself, then on the
queue its stage writes to, then on a lambda of the same job; a memory leak alarms each time its pod comes
close to its limit, an hour or more apart. Each is a confirmed episode (:mod:`cms_dagster.detect.episodes`);
an incident is the episodes that belong together:

- an episode **joins** an open incident when it starts at most ``near`` after the incident's last alarm and
  its entities are related to the incident's in the ontology or are used by the same job (the same run is
  hit by both), or at most ``far`` after it and related in the ontology (one depends on the other,
  directly or through others) or working on one resource with them (two jobs slowed by one database
  that raised no alarm of its own, the second one's run an hour later); and it starts at most ``span``
  after the incident's first alarm (a fault is not news for ever). Episodes are taken in time order; one
  that can join several incidents joins the one it shares an entity with, else one related in the
  ontology, else one sharing a resource, else one used by the same job, the earliest among equals (a
  fault's second episode belongs to the fault's incident, not to another feed's that a job reading both
  relates it to).
- past ``far`` only the incident's own moves **coming back** join it, up to ``span`` after its first alarm: an
  episode in which a series that rose in the incident falls, or one that fell rises (observed against the
  detector's baseline). A leaking pod's memory climbs, alarms, climbs on unnoticed, and drops when the pod
  restarts two or three hours later; a feed's count falls at an outage and returns when it ends. The
  return is the same problem's end, not a new one. A series moving the same way again after ``far`` is
  still a new incident.
- a run is judged when it finishes, so an episode of job and stage verdicts **began** when the earliest of
  its runs began (the runs of its jobs and stages that finished during it): ``near`` and ``far`` count from
  there. A valuation run that starts while its feed is delayed and finishes two and a half hours later, slow,
  belongs to the feed's incident though its verdict comes more than ``far`` after the feed's last alarm.
- the incident **starts** at its first episode's first alarm: its id is that episode's
  (:func:`cms_dagster.incidents.report.incident_id`), so later episodes join without changing it.
- it is **closed** once the detector has scored more than ``far`` past its last alarm and no run of a job or
  stage related to it that began by then is still running (its verdict could still join), or more than
  ``span`` past its first alarm: no episode can join any more but a series of it coming back, which reopens
  it under the same id.
- the **schedule opens none**: a confirmed episode that every one of whose entities also had a confirmed
  episode at the same time of day on most of the three days before, or at the same time on the same weekday
  both of the two weeks before (:func:`cms_dagster.detect.episodes.explained_by_schedule`), is the batch window or
  the market open, not news: it neither opens nor joins an incident (:func:`explained_between` lists
  them). A fault during the batch still opens one: it moves something the batch does not.
- episodes are those of ``cms detect alarms``: alarms on a resource that scheduled work which went as usual
  explains corroborate nothing, unless the alarm is sure and beyond anything the resource did in the week
  before (:func:`cms_dagster.detect.episodes.explained_by_work`).

**Stable ids.** Grouping is read from a point before the window where nothing links across: no episode
(confirmed or not) spans it (from when it began), no confirmed episode ended within ``far`` before it and
none whose series moved started within ``span`` before it (its coming back could still join). Incidents after such
a point are the same whatever earlier data was read, so a back-fill, a re-run, the sensor's window and
``cms incidents build --since`` all give the same incidents and ids. The point is searched in the
``lookback`` before the window (a day by default); if the estate alarmed without pause for all of it,
grouping starts at the look-back's start. The two weeks before that are read too, for the schedule.

Plain Python (pandas); no Dagster.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import pandas as pd

from cms_dagster.detect.episodes import (
    DEFAULT_GAP,
    SCHEDULE_LOOKBACK,
    Episode,
    episodes_between,
    explained_by_schedule,
    read_stage_runs,
)
from cms_dagster.domain.graph import related_nodes
from cms_dagster.domain.model import Ontology

__all__ = [
    "DEFAULT_FAR",
    "DEFAULT_LOOKBACK",
    "DEFAULT_NEAR",
    "DEFAULT_SPAN",
    "Incident",
    "IncidentEpisode",
    "Relations",
    "Runs",
    "Window",
    "explained_between",
    "group_episodes",
    "incidents_between",
    "window_between",
]

Query = Callable[[str, list], pd.DataFrame]

# measured on a simulated 10-day month (benchmarks/incidents_eval.py): the alarms of one injected fault came
# as episodes up to 2 h apart (a memory leak's pod nearing its limit again), while the nightly batch's
# unrelated resources alarm within minutes of one another
DEFAULT_NEAR = pd.Timedelta(minutes=30)
DEFAULT_FAR = pd.Timedelta(hours=2)
DEFAULT_SPAN = pd.Timedelta(hours=6)
DEFAULT_LOOKBACK = pd.Timedelta(days=1)


class Relations:
    """Which entities an incident's episodes may share: related through the dependency graph (itself,
    what it depends on, what depends on it), using one resource (two stages or jobs on one database), or
    used by one job."""

    def __init__(self, edges: Iterable[tuple[str, str]]) -> None:
        edges = list(edges)
        self.related = related_nodes(edges)
        self.jobs = {n: {m for m in rel if m.startswith("job:")} for n, rel in self.related.items()}
        forward: dict[str, list[str]] = {}
        for src, dst in edges:
            forward.setdefault(src, []).append(dst)
        # the resources a stage works on directly; a job's are its stages'; a resource is its own
        stages = {n: {t for t in forward.get(n, ()) if _resource(t)} for n in forward if n.startswith("stage:")}
        self.resources: dict[str, set[str]] = {n: {n} for n in self.related if _resource(n)}
        self.resources.update(stages)
        for n in self.related:
            if n.startswith("job:"):
                self.resources[n] = set().union(*(stages.get(m, set()) for m in forward.get(n, ())))

    def close(self, a: Iterable[str], b: Iterable[str]) -> bool:
        """Related through the graph."""
        bs = set(b)
        return any(self.related.get(x, {x}) & bs for x in a)

    def sharing(self, a: Iterable[str], b: Iterable[str]) -> bool:
        """Something of ``a`` and something of ``b`` work on one resource (two jobs slowed by one database
        that raised no alarm of its own)."""
        theirs = set().union(*(self.resources.get(y, set()) for y in b))
        return any(self.resources.get(x, set()) & theirs for x in a)

    def runs_of(self, entities: Iterable[str]) -> list[str]:
        """The jobs and stages related through the graph to any of ``entities``, sorted."""
        out: set[str] = set()
        for x in entities:
            out |= {m for m in self.related.get(x, {x}) if m.startswith(("job:", "stage:"))}
        return sorted(out)

    def near(self, a: Iterable[str], b: Iterable[str]) -> bool:
        """Related through the graph, or used by the same job."""
        bs = set(b)
        if self.close(a, bs):
            return True
        jobs = set().union(*(self.jobs.get(y, set()) for y in bs))
        return any(self.jobs.get(x, set()) & jobs for x in a)


def _resource(node: str) -> bool:
    return not node.startswith(("stage:", "job:", "feed:"))


# the job runs under way at some time in [?, ?) (the stage runs: WORK_SQL)
JOB_RUNS_SQL = (
    "select 'job:' || job_key as entity_id, actual_start_ts as started_ts, actual_end_ts as finished_ts "
    "from {marts}.fct_batch_runs where (actual_end_ts is null or actual_end_ts >= ?) and actual_start_ts < ?"
)
RUNS_LOOKBACK = pd.Timedelta(hours=12)  # runs that finish in the window may have begun this long before it


class Runs:
    """Job and stage runs (``entity_id`` ``job:<key>`` / ``stage:<key>``, ``started_ts``, ``finished_ts``
    null while running): when an episode of run verdicts began, and which runs are still under way."""

    def __init__(self, runs: pd.DataFrame) -> None:
        r = runs.dropna(subset=["started_ts"])
        self._spans: dict[str, tuple[pd.Series, pd.Series]] = {
            str(e): (pd.to_datetime(g["started_ts"], utc=True), pd.to_datetime(g["finished_ts"], utc=True))
            for e, g in r.groupby("entity_id")
        }

    @classmethod
    def read(
        cls, query: Query, since: pd.Timestamp, until: pd.Timestamp, stage_runs: pd.DataFrame, marts_schema: str = "marts"
    ) -> Runs:
        """The job runs under way at some time in [since - RUNS_LOOKBACK, until) (UTC; none when the run mart is
        not built) with ``stage_runs`` (:func:`cms_dagster.detect.episodes.read_stage_runs`, read from then or
        earlier)."""
        lo, hi = (t.tz_convert("UTC").tz_localize(None).to_pydatetime() for t in (since - RUNS_LOOKBACK, until))
        try:
            jobs = query(JOB_RUNS_SQL.format(marts=marts_schema), [lo, hi])
        except Exception:  # no job runs in this warehouse (yet): their episodes began at their first alarm
            return cls(stage_runs)
        return cls(pd.concat([jobs, stage_runs], ignore_index=True))

    def began(self, episode: Episode) -> pd.Timestamp:
        """The episode's first alarm, or the start of the earliest run of its jobs and stages that finished
        during it (a run's verdict is raised when it finishes), whichever is earlier."""
        first = episode.start
        for e in episode.entities:
            if e not in self._spans:
                continue
            start, end = self._spans[e]
            hit = start[(end >= episode.start) & (end <= episode.end)]
            if len(hit):
                first = min(first, hit.min())
        return first

    def running(self, entities: Iterable[str], began_by: pd.Timestamp, at: pd.Timestamp) -> list[str]:
        """Those of ``entities`` with a run that began by ``began_by`` and had not finished at ``at``."""
        out = []
        for e in entities:
            if e not in self._spans:
                continue
            start, end = self._spans[e]
            if ((start <= began_by) & (end.isna() | (end > at))).any():
                out.append(e)
        return out


@dataclass(frozen=True)
class IncidentEpisode(Episode):
    """An incident as one episode (:meth:`Incident.as_episode`), with the runs that keep it open."""

    running: tuple[str, ...] = ()  # jobs and stages related to it with a run that began while it was open


@dataclass(frozen=True)
class Incident:
    """Confirmed episodes that are one problem, oldest first; ``running``: the jobs and stages related to it
    whose run began by ``far`` after its last alarm and was still under way when it was read (their
    verdicts may still join it, so it is not closed)."""

    episodes: tuple[Episode, ...]
    running: tuple[str, ...] = ()

    @property
    def start(self) -> pd.Timestamp:
        return self.episodes[0].start

    @property
    def end(self) -> pd.Timestamp:
        return max(e.end for e in self.episodes)

    @property
    def entities(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(x for e in self.episodes for x in e.entities))

    def as_episode(self) -> IncidentEpisode:
        """The incident as one episode: from the first alarm to the last, every entity and series (in the
        order of their first alarm), the alarms summed; what a report is written from."""
        first = self.episodes[0]
        return IncidentEpisode(
            start=first.start,
            end=self.end,
            alarms=sum(e.alarms for e in self.episodes),
            entities=self.entities,
            series=tuple(dict.fromkeys(s for e in self.episodes for s in e.series)),
            peak_score=max(e.peak_score for e in self.episodes),
            confirmed=True,
            running=self.running,
        )


def group_episodes(
    episodes: Sequence[Episode],
    relations: Relations,
    *,
    near: pd.Timedelta = DEFAULT_NEAR,
    far: pd.Timedelta = DEFAULT_FAR,
    span: pd.Timedelta = DEFAULT_SPAN,
    began: Callable[[Episode], pd.Timestamp] | None = None,
) -> list[Incident]:
    """Group confirmed episodes into incidents (see the module's rules), oldest first. Unconfirmed
    episodes are ignored. ``began``: when an episode began (:meth:`Runs.began`; by default its first
    alarm)."""
    began = began or (lambda e: e.start)
    groups: list[dict] = []
    for e in sorted((e for e in episodes if e.confirmed), key=lambda e: (e.start, e.entities)):
        best, best_tie = None, 0
        b = began(e)
        for g in groups:
            if e.start > g["start"] + span:
                continue
            if b > g["end"] + far:
                # quiet for longer than ``far``: only the incident's own moves coming back can join
                if not _reverses(e, g):
                    continue
                tie = 6
            elif set(e.entities) & g["entities"]:
                tie = 5
            elif relations.close(e.entities, g["entities"]):
                tie = 4
            elif relations.sharing(e.entities, g["entities"]):
                tie = 3
            elif b <= g["end"] + near and relations.near(e.entities, g["entities"]):
                tie = 2
            else:
                continue
            if tie > best_tie:
                best, best_tie = g, tie
        if best is not None:
            best["episodes"].append(e)
            best["end"] = max(best["end"], e.end)
            best["entities"] |= set(e.entities)
            best["rising"] |= set(e.rising)
            best["falling"] |= set(e.falling)
        else:
            groups.append(
                {
                    "start": e.start,
                    "end": e.end,
                    "entities": set(e.entities),
                    "episodes": [e],
                    "rising": set(e.rising),
                    "falling": set(e.falling),
                }
            )
    return [Incident(tuple(g["episodes"])) for g in groups]


def _reverses(e: Episode, g: dict) -> bool:
    """Whether episode ``e`` moves back a series that the incident ``g`` moved: one that rose in the incident
    falls in ``e``, or one that fell rises (a leaking pod's memory dropping at its restart, a feed's count
    coming back after its outage)."""
    return bool(set(e.falling) & g["rising"] or set(e.rising) & g["falling"])


def _quiet_point(
    episodes: Sequence[Episode], lo: pd.Timestamp, since: pd.Timestamp, far: pd.Timedelta,
    began: Callable[[Episode], pd.Timestamp], span: pd.Timedelta = DEFAULT_SPAN,
) -> pd.Timestamp:
    """The latest time in [lo + the alarm gap, since] across which no episode links (none spans it from when
    it began to its last alarm) and before which no confirmed episode ended within ``far`` or, when its
    series moved (it could be joined by their coming back), started within ``span``; ``lo`` when there is
    none."""
    earliest = lo + DEFAULT_GAP
    candidates = sorted({since, *(e.start for e in episodes if earliest <= e.start < since)}, reverse=True)
    for t in candidates:
        if t < earliest:
            break
        spans = any(began(e) < t <= e.end for e in episodes)
        recent = any(
            e.confirmed and e.start < t and (e.end + far >= t or (e.start + span >= t and (e.rising or e.falling)))
            for e in episodes
        )
        if not spans and not recent:
            return t
    return lo


def incidents_between(
    query: Query,
    since: dt.datetime,
    until: dt.datetime,
    ontology: Ontology,
    *,
    lookback: pd.Timedelta = DEFAULT_LOOKBACK,
    relations: Relations | None = None,
    schedule: bool = True,
    **options: pd.Timedelta,
) -> list[Incident]:
    """The incidents with alarms in [since, until) (UTC), oldest first, each whole (its episodes before
    ``since`` included). Confirmed episodes that the schedule explains
    (:func:`cms_dagster.detect.episodes.explained_by_schedule`: each of their entities had a confirmed
    episode at that time on most earlier days, or on that weekday both weeks before) open no incident
    and join none; ``schedule=False`` keeps them. ``options``: ``near``, ``far``, ``span`` of
    :func:`group_episodes`. Raises NoAlarmsTable when detection has not run on this warehouse yet."""
    return window_between(
        query, since, until, ontology, lookback=lookback, relations=relations, schedule=schedule, **options
    ).incidents


def explained_between(
    query: Query,
    since: dt.datetime,
    until: dt.datetime,
    ontology: Ontology,
    *,
    relations: Relations | None = None,
) -> list[Episode]:
    """The confirmed episodes starting in [since, until) that the schedule explains (no incident, no
    report: the batch window, the market open), oldest first."""
    return window_between(query, since, until, ontology, relations=relations).explained


@dataclass(frozen=True)
class Window:
    """A window's incidents and the confirmed episodes starting in it that the schedule explains, from one
    read of the alarms."""

    incidents: list[Incident]
    explained: list[Episode]


def window_between(
    query: Query,
    since: dt.datetime,
    until: dt.datetime,
    ontology: Ontology,
    *,
    lookback: pd.Timedelta = DEFAULT_LOOKBACK,
    relations: Relations | None = None,
    schedule: bool = True,
    marts_schema: str = "marts",
    **options: pd.Timedelta,
) -> Window:
    """:func:`incidents_between` and :func:`explained_between` together: the alarms of the window, the
    look-back and the weeks before for the schedule are read once (``marts_schema``: where the run facts
    are)."""
    relations = relations or Relations(ontology.dependency_edges())
    since_ts = _utc(since)
    until_ts = _utc(until)
    far = options.get("far", DEFAULT_FAR)
    span = options.get("span", DEFAULT_SPAN)
    lo = since_ts - lookback
    # the weeks before too: what recurs at the same time of day or week is the schedule
    back = SCHEDULE_LOOKBACK if schedule else pd.Timedelta(0)
    # the stage runs once, for the work rule of the episodes and for when runs began
    stage_runs = read_stage_runs(query, (lo - back - RUNS_LOOKBACK).to_pydatetime(), until, marts_schema)
    everything = episodes_between(
        query, (lo - back).to_pydatetime(), until, ontology.dependency_edges(), stage_runs=stage_runs,
        marts_schema=marts_schema,
    )
    eps = [e for e in everything if e.start >= lo]
    explained = [e for e in eps if e.confirmed and explained_by_schedule(e, everything)] if schedule else []
    if explained:
        drop = {id(e) for e in explained}
        eps = [e for e in eps if id(e) not in drop]
    runs = Runs.read(query, lo, until_ts, stage_runs, marts_schema)
    start = _quiet_point(eps, lo, since_ts, far, runs.began, span)
    incidents = group_episodes([e for e in eps if e.start >= start], relations, began=runs.began, **options)
    # an incident stays open while a run that its fault may have hit, begun by then, is still under way and
    # its verdict could still join (up to ``span`` after the incident's start: a hung run holds it no longer)
    incidents = [
        replace(i, running=tuple(runs.running(relations.runs_of(i.entities), i.end + far, until_ts)))
        if until_ts <= i.start + span
        else i
        for i in incidents
    ]
    return Window(
        incidents=[i for i in incidents if i.end >= since_ts],
        explained=[e for e in explained if e.start >= since_ts],
    )


def _utc(t: dt.datetime) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")
