"""Alarm episodes: alarms that belong to one problem, grouped through time and the dependency graph.

Across an estate of hundreds of series, a detector tuned to catch real faults also fires now and then on
noise: single alarms on single series, scattered through the day. A real fault moves several things that
depend on one another (a feed goes quiet, its ingest stage slows, the job runs late) or moves one thing
very far. So alarms are grouped, and only a corroborated group is worth a page or a root-cause analysis:

- two alarms are **linked** when they are at most ``gap`` apart and their entities are related: the same
  entity, or one depends on the other, directly or through others (the ontology's dependency edges);
- an **episode** is a group of alarms connected by links; it starts at its first alarm;
- an episode is **confirmed** when it spans at least ``min_entities`` entities that are connected through
  one another (one depends on the other and they alarmed at most ``gap`` apart: two stages of different
  jobs joined only through the database they share, whose own alarm is the batch at work or a trend, are
  that database's, not two witnesses),
  or one of its alarms has a
  score of at least ``sure_score`` (a move so large that it needs no second entity) and the move holds: the
  series that scored it alarms again after it (``persist`` alarms on that series from the sure one on, on
  the side of the usual value it moved to, when the rows carry ``delta``: observed less baseline). A
  fault that moves one thing very far keeps it there (a feed that is down stays down, a delayed feed stays
  stale, a latency stays high); one extreme point followed only by small moves of other metrics of the same
  entity is a blip (a count of bad records going from 0 to 1 for a minute, staleness going from 0.05 s to
  0.4 s). Unconfirmed episodes are still recorded and shown, at warning level.
- a trend (``kind`` drift, ``SILENT_KINDS``) corroborates nothing: the detector's trend test compares hourly
  medians, so every series that has crept one way for hours alarms at the same top of the hour; two such
  trends (a namespace's memory and its cluster's on a quiet weekend afternoon) share the test's clock, not
  a cause. A trend stays in its episode and shows what moved; it never scored 0.99 on the simulated months.
- a sure score counts only once the detector has watched the entity for a day (``LEARNING``, the
  ``learning`` column; :func:`learning`): before that its daily profile has not seen the time of day, so the
  first market open, the first evening batch, the first night's quiet score extreme on every series that
  has them (on the simulated months, the feeds' first open at 07:00 gave one sure episode per feed). Such an
  episode still confirms from two entities.

After an alarm the detector damps the score of the same series for a quiet period (one incident, one alarm),
so a move that holds alarms again only when it grows. The detector still gives each point whose undamped
surprise reaches the alarm level a ``kind`` (not ``none``), and the warehouse keeps those points whatever
their damped score (``is_alarm`` false: **repeats**; ``ALARMS_AND_REPEATS_SQL`` reads both). A repeat joins
no episode, adds no entity and pages nothing. With ``repeat_run`` (minutes; 0, the default, reads none) a
sure alarm also holds when its series is at the alarm level, an alarm or a repeat, at every minute of the
``repeat_run`` minutes after it. Off by default: on the development months it confirmed no injected
incident that the rule above missed, and it confirmed the feeds' evening moves (staleness and message
counts about 21:00-21:30, sure on a different feed each day, so not the schedule); counting any later
repeat instead of a run also confirmed bad-record blips (a second bad record minutes after the first). The
figures (``--repeat-run``) are in benchmarks/README.md, under ``alarm_episodes.py``.

Plain Python (pandas); no Dagster. Used by ``cms detect alarms``, ``cms rca incident --latest`` and the
RCA evaluation (the start of each incident).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cms_dagster.detect.sla import SLA_KINDS
from cms_dagster.domain.graph import related_nodes as related

__all__ = [
    "ALARM_ROWS",
    "ALARMS_AND_REPEATS_SQL",
    "ALARMS_SQL",
    "NoAlarmsTable",
    "DEFAULT_GAP",
    "DEFAULT_MIN_ENTITIES",
    "DEFAULT_PERSIST",
    "DEFAULT_REPEAT_RUN",
    "DEFAULT_SURE_SCORE",
    "Episode",
    "episodes_between",
    "explained_by_schedule",
    "explained_by_work",
    "workers",
    "group_alarms",
    "label_alarms",
    "latest_alarm",
    "LEARNING",
    "learning",
    "read_first_seen",
    "SCHEDULE_LOOKBACK",
    "SILENT_KINDS",
    "STREAM_SOURCES",
    "is_schedule",
    "recurs",
    "recurs_daily",
    "read_stage_runs",
    "related",
]

DEFAULT_GAP = pd.Timedelta(minutes=30)
DEFAULT_MIN_ENTITIES = 2
# a quarter of the detector's alarms score 0.9 or more, so 0.9 confirmed about one lone alarm an hour across
# the simulated estate; from 0.99, 0.56-0.67 episodes an hour outside incidents were confirmed and 63-64 of 64
# incidents still had one in their window (benchmarks/alarm_episodes.py on four simulated months, before the
# persistence rule below; benchmarks/README.md has the figures with it)
DEFAULT_SURE_SCORE = 0.99
# a lone entity's sure score counts only when the move holds: at least this many alarms of the series that
# scored it, from that alarm on (2: it alarms again after it); an extreme point on one series followed only by
# other metrics of the entity moving a little is a blip, shown as a warning
DEFAULT_PERSIST = 2
# alarm kinds that corroborate nothing: the detector's trend test (``drift``) compares hourly medians, so it
# speaks at the top of the hour for every series that has crept one way for hours at once; two trends in the
# same hour (a namespace's memory and its cluster's, on a quiet afternoon) share the test's clock, not a cause
SILENT_KINDS = ("drift",)
# minutes after a sure alarm at each of which its series' alarms or damped repeats also make the move hold;
# 0: repeats are not read (see the module doc for why)
DEFAULT_REPEAT_RUN = 0
_COLUMNS = ("ts", "entity_id", "series", "score")


@dataclass(frozen=True)
class Episode:
    """Alarms that belong together: when, on what, how strongly, and whether they are corroborated."""

    start: pd.Timestamp  # the first alarm
    end: pd.Timestamp  # the last alarm
    alarms: int
    entities: tuple[str, ...]  # in the order of their first alarm
    series: tuple[str, ...]  # entity|metric, in the order of their first alarm
    peak_score: float
    confirmed: bool
    # the series whose alarms in the episode were above / below their usual value (observed vs baseline);
    # empty when the rows carry no ``delta`` column
    rising: tuple[str, ...] = ()
    falling: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": _iso(self.start),
            "end": _iso(self.end),
            "alarms": self.alarms,
            "entities": list(self.entities),
            "series": list(self.series),
            "peak_score": round(self.peak_score, 4),
            "confirmed": self.confirmed,
        }


def _iso(t: pd.Timestamp) -> str:
    return t.isoformat().replace("+00:00", "Z")


def label_alarms(
    alarms: pd.DataFrame,
    edges: Iterable[tuple[str, str]] | Mapping[str, set[str]],
    *,
    gap: pd.Timedelta = DEFAULT_GAP,
    min_entities: int = DEFAULT_MIN_ENTITIES,
    sure_score: float = DEFAULT_SURE_SCORE,
    persist: int = DEFAULT_PERSIST,
    repeat_run: int = DEFAULT_REPEAT_RUN,
) -> pd.DataFrame:
    """The alarm rows sorted by time, with ``episode`` (0, 1, ... in order of their first alarm) and
    ``confirmed`` columns (repeats, rows whose ``is_alarm`` is false, are left out); see :func:`group_alarms`
    for the arguments."""
    missing = [c for c in _COLUMNS if c not in alarms.columns]
    if missing:
        raise ValueError(f"alarms need the columns {', '.join(_COLUMNS)}; missing: {', '.join(missing)}")
    near = edges if isinstance(edges, Mapping) else related(edges)
    a = alarms.copy()
    a["ts"] = pd.to_datetime(a["ts"], utc=True)
    a = a.sort_values(["ts", "series"], kind="stable").reset_index(drop=True)
    repeats = a.iloc[:0]
    if "is_alarm" in a.columns:
        alarm = a["is_alarm"].astype(bool)
        repeats, a = a[~alarm], a[alarm].reset_index(drop=True)
    if a.empty:
        return a.assign(episode=pd.Series(dtype="int64"), confirmed=pd.Series(dtype=bool))
    ts = a["ts"].to_numpy()
    ent = a["entity_id"].astype(str).tolist()
    parent = list(range(len(a)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    lo = 0
    gap64 = gap.to_timedelta64()
    for i in range(len(a)):
        while ts[i] - ts[lo] > gap64:
            lo += 1
        mine = near.get(ent[i], {ent[i]})
        for j in range(lo, i):
            if ent[j] in mine or ent[j] == ent[i]:
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    roots = pd.Series([find(i) for i in range(len(a))])
    a["episode"] = roots.rank(method="dense").astype("int64") - 1  # roots are first rows: time order
    # alarms explained by scheduled work that went as usual (column ``explained``) and trends (``kind``
    # drift) stay in their episode but corroborate nothing
    def corroborates(rows: pd.DataFrame) -> pd.Series:
        out = pd.Series(True, index=rows.index)
        if "explained" in rows.columns:
            out &= ~rows["explained"].astype(bool)
        if "kind" in rows.columns:
            out &= ~rows["kind"].astype(str).isin(SILENT_KINDS)
        return out

    news = corroborates(a)
    wide = a["episode"].isin(_wide(a[news], near, min_entities, gap))
    # a sure score on an entity the detector has watched for less than ``LEARNING`` is not sure yet
    learns = a["learning"].astype(bool) if "learning" in a.columns else pd.Series(False, index=a.index)
    a["confirmed"] = wide | a["episode"].isin(
        _held(a[news], repeats[corroborates(repeats)], sure_score, persist, repeat_run, learns[news])
    )
    return a


def _wide(news: pd.DataFrame, near: Mapping[str, set[str]], min_entities: int, gap: pd.Timedelta) -> set[int]:
    """The episodes with at least ``min_entities`` entities among the alarms of ``news`` (rows labelled with
    ``episode``, those that may corroborate) that are connected through one another: two entities are
    connected when one depends on the other (``near``) and they alarmed at most ``gap`` apart. Two entities
    joined only through alarms that corroborate nothing (a cluster busy with the batch, a trend), in the
    graph or in time, are the shared thing's, not two witnesses."""
    out: set[int] = set()
    for ep, rows in news.groupby("episode"):
        ents = rows["entity_id"].astype(str).tolist()
        if len(set(ents)) >= min_entities and _witnesses(ents, rows["ts"], near, gap) >= min_entities:
            out.add(int(ep))
    return out


def _witnesses(ents: list[str], ts: pd.Series, near: Mapping[str, set[str]], gap: pd.Timedelta) -> int:
    """The size of the largest group of the entities of alarms (``ents``, ``ts``) connected through one
    another (one depends on the other, and they alarmed at most ``gap`` apart)."""
    times = pd.to_datetime(ts, utc=True).to_numpy()
    at: dict[str, list] = {}
    for e, t in zip(ents, times, strict=True):
        at.setdefault(e, []).append(t)
    limit = gap.to_timedelta64()

    def meet(a: str, b: str) -> bool:
        if not (b in near.get(a, {a}) or a in near.get(b, {b})):
            return False
        return any(abs(x - y) <= limit for x in at[a] for y in at[b])

    best, left = 0, set(at)
    while left:
        group, stack = 0, [left.pop()]
        while stack:
            e = stack.pop()
            group += 1
            linked = {x for x in left if meet(e, x)}
            left -= linked
            stack += linked
        best = max(best, group)
    return best


def _held(
    news: pd.DataFrame,
    repeats: pd.DataFrame,
    sure_score: float,
    persist: int,
    repeat_run: int,
    learns: pd.Series | None = None,
) -> set[int]:
    """The episodes in which a series scored ``sure_score`` or more and has at least ``persist`` alarms from
    that alarm on, or (``repeat_run`` > 0) an alarm or a repeat at each of the ``repeat_run`` minutes after
    it (``news``: alarm rows labelled with ``episode``, those that may corroborate; ``repeats``: the damped
    repeats that may corroborate; ``learns``: per row of ``news``, whether its score cannot be sure because
    the detector is still learning its entity's day)."""
    keys = ["episode", "series"]
    sure = news["score"] >= sure_score
    if learns is not None:
        sure &= ~learns
    first = news[sure].groupby(keys)["ts"].min().rename("_first")
    if first.empty:
        return set()
    rows = news[keys + ["ts"]].join(first, on=keys, how="inner")
    if "delta" in news.columns:
        # the move holds when the later alarms stay on the side of the usual the sure one went to: a dip
        # followed by a rise back above the usual is a point and a rebound, not a level that holds
        side = np.sign(pd.to_numeric(news["delta"], errors="coerce"))
        rows = rows.assign(_side=side.reindex(rows.index))
        at_sure = rows[rows["ts"] == rows["_first"]].groupby(keys)["_side"].first().rename("_sure_side")
        rows = rows.join(at_sure, on=keys)
        rows = rows[~(rows["_side"] * rows["_sure_side"] < 0)]
    since = rows[rows["ts"] >= rows["_first"]].groupby(keys).size()
    held = set(since[since >= persist].index.get_level_values("episode").tolist())
    if repeat_run > 0:
        sure = first.reset_index()
        seen = pd.concat([news[["series", "ts"]], repeats[["series", "ts"]]], ignore_index=True)
        seen = seen.merge(sure, on="series")
        minute = (seen["ts"] - seen["_first"]) / pd.Timedelta(minutes=1)
        run = seen[(minute >= 1) & (minute <= repeat_run) & (minute == minute.round())]
        count = run.assign(_m=minute).drop_duplicates(keys + ["_m"]).groupby(keys).size()
        held |= set(count[count >= repeat_run].index.get_level_values("episode").tolist())
    return held


# the stage runs under way at some time in [?, ?) (finished_ts null while one runs)
WORK_SQL = (
    "select 'stage:' || stage_key as entity_id, started_ts, finished_ts from {marts}.fct_stage_runs "
    "where (finished_ts is null or finished_ts >= ?) and started_ts < ?"
)
WORK_MARGIN = pd.Timedelta(minutes=10)  # load starts a little before a stage reports and lingers after it


def workers(edges: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    """Per resource, the stages that put work on it: the stages that use it, or use something that runs on
    it (a namespace of a cluster). Jobs, stages and feeds are not resources."""
    out: dict[str, set[str]] = {}
    uses: dict[str, set[str]] = {}
    for src, dst in edges:
        uses.setdefault(src, set()).add(dst)

    def resource(node: str) -> bool:
        return not node.startswith(("stage:", "job:", "feed:"))

    for src, targets in uses.items():
        if not src.startswith("stage:"):
            continue
        todo = [t for t in targets if resource(t)]
        seen: set[str] = set()
        while todo:
            r = todo.pop()
            if r in seen:
                continue
            seen.add(r)
            out.setdefault(r, set()).add(src)
            todo += [t for t in uses.get(r, ()) if resource(t)]
    return out


def explained_by_work(
    alarms: pd.DataFrame,
    runs: pd.DataFrame,
    edges: Iterable[tuple[str, str]],
    *,
    margin: pd.Timedelta = WORK_MARGIN,
    ranges: pd.DataFrame | None = None,
    sure_score: float = DEFAULT_SURE_SCORE,
) -> pd.Series:
    """Per alarm row: whether it is explained by scheduled work that went as usual. An alarm on a resource
    is explained when a stage that puts work on it (:func:`workers`) was running then (from ``margin``
    before its start to ``margin`` after its end; ``runs``: columns ``entity_id, started_ts, finished_ts``)
    and that stage raised no alarm of its own from its start to ``margin`` after its end (runs are judged
    against the same stage's runs at the same slot, so a normal run is the batch window, not a fault: a
    database busy under a run that is as quick as usual is the schedule). Alarms on anything else, or with
    no such run, are not explained. With ``ranges`` (:func:`read_ranges`), a sure alarm (``sure_score`` or
    more) whose observed value is beyond every value its series had on the ``RANGE_DAYS`` days before is
    not explained either: the work explains what the resource does under it, not a move it never made."""
    if alarms.empty or runs.empty:
        return pd.Series(False, index=alarms.index)
    out = np.zeros(len(alarms), dtype=bool)
    beyond = _beyond(alarms, ranges, sure_score)
    work = workers(edges)

    def ns(values: pd.Series) -> np.ndarray:
        t = pd.to_datetime(values, utc=True).dt.tz_localize(None)
        return t.to_numpy(dtype="datetime64[ns]").astype("int64")

    ts = ns(alarms["ts"])
    ents = alarms["entity_id"].astype(str).to_numpy()
    r = runs.dropna(subset=["started_ts", "finished_ts"])
    pad = int(margin.value)
    spans = {e: (ns(g["started_ts"]), ns(g["finished_ts"])) for e, g in r.groupby(r["entity_id"].astype(str))}
    own = {e: np.sort(ts[ents == e]) for e in set(ents) if e.startswith("stage:")}
    for i in range(len(ts)):
        if beyond[i]:
            continue
        for stage in work.get(ents[i], ()):
            if stage not in spans:
                continue
            start, end = spans[stage]
            running = (start - pad <= ts[i]) & (ts[i] <= end + pad)
            mine = own.get(stage)
            for a, b in zip(start[running], end[running], strict=True):
                if mine is None or not ((mine >= a) & (mine <= b + pad)).any():
                    out[i] = True
                    break
            if out[i]:
                break
    return pd.Series(out, index=alarms.index)


RANGE_DAYS = 7  # days before an alarm whose values bound what scheduled work may explain
RANGE_WINDOW = pd.Timedelta(days=RANGE_DAYS)
RANGE_SQL = (
    "select entity_id, metric, cast(minute_ts as date) as day, max(avg_value) as hi, min(avg_value) as lo "
    "from {marts}.fct_infra_metrics where minute_ts >= ? and minute_ts < ? "
    "group by entity_id, metric, cast(minute_ts as date)"
)


def read_ranges(
    query: Callable[[str, list], pd.DataFrame], since: dt.datetime, until: dt.datetime, marts: str = "marts"
) -> pd.DataFrame:
    """Per resource series and day, the highest and lowest minute value (columns ``entity_id, metric, day,
    hi, lo``) from the start of the day ``RANGE_DAYS`` days before ``since``'s (UTC) to ``until``: what
    bounds the moves scheduled work explains (:func:`explained_by_work`). Whole days, so an alarm is judged
    the same whatever window it is read in. Empty when the marts have no resource metrics."""
    first_day = dt.datetime.combine(_naive(since).date(), dt.time()) - RANGE_WINDOW
    try:
        return query(RANGE_SQL.format(marts=marts), [first_day, _naive(until)])
    except Exception:  # no resource metrics in this warehouse (yet): nothing bounds the work
        return pd.DataFrame(columns=["entity_id", "metric", "day", "hi", "lo"])


def _beyond(alarms: pd.DataFrame, ranges: pd.DataFrame | None, sure_score: float) -> np.ndarray:
    """Per alarm row: a sure alarm whose observed value is above the highest or below the lowest value of its
    series on the ``RANGE_DAYS`` days before its day (False without ``ranges`` or without those days)."""
    out = np.zeros(len(alarms), dtype=bool)
    if ranges is None or ranges.empty or not {"observed", "metric"} <= set(alarms.columns):
        return out
    score = pd.to_numeric(alarms["score"], errors="coerce").to_numpy(dtype=float)
    sure = np.flatnonzero(score >= sure_score)
    if not len(sure):
        return out
    r = ranges.assign(day=pd.to_datetime(ranges["day"]).dt.date)
    by_series = {k: g for k, g in r.groupby([r["entity_id"].astype(str), r["metric"].astype(str)])}
    days = pd.to_datetime(alarms["ts"], utc=True).dt.date.to_numpy()
    observed = pd.to_numeric(alarms["observed"], errors="coerce").to_numpy(dtype=float)
    ents = alarms["entity_id"].astype(str).to_numpy()
    metrics = alarms["metric"].astype(str).to_numpy()
    for i in sure:
        g = by_series.get((ents[i], metrics[i]))
        if g is None or np.isnan(observed[i]):
            continue
        before = g[(g["day"] < days[i]) & (g["day"] >= days[i] - dt.timedelta(days=RANGE_DAYS))]
        if len(before):
            out[i] = observed[i] > before["hi"].max() or observed[i] < before["lo"].min()
    return out


LEARNING = pd.Timedelta(days=1)  # how long the detector watches an entity before its sure scores count
# the first minute of each streamed entity (resources, feeds) over [?, ?)
FIRST_SEEN_SQL = (
    "select entity_id, min(minute_ts) as first_ts from {marts}.fct_infra_metrics "
    "where minute_ts >= ? and minute_ts < ? group by entity_id",
    "select 'feed:' || feed_id as entity_id, min(minute_ts) as first_ts from {marts}.fct_feed_status "
    "where minute_ts >= ? and minute_ts < ? group by feed_id",
)


def read_first_seen(
    query: Callable[[str, list], pd.DataFrame], since: dt.datetime, until: dt.datetime, marts: str = "marts"
) -> pd.DataFrame:
    """Per streamed entity (a resource of ``fct_infra_metrics``, a feed of ``fct_feed_status``), its first
    minute from ``LEARNING`` before the start of ``since``'s day (UTC) to ``until`` (columns ``entity_id,
    first_ts``): enough to tell, for any alarm in [since, until), whether the detector had watched its entity
    for ``LEARNING`` (:func:`learning`), whatever window it is read in. A table the warehouse lacks gives no
    rows."""
    first_day = dt.datetime.combine(_naive(since).date(), dt.time()) - LEARNING.to_pytimedelta()
    parts = []
    for sql in FIRST_SEEN_SQL:
        try:
            parts.append(query(sql.format(marts=marts), [first_day, _naive(until)]))
        except Exception:  # no such table in this warehouse (yet)
            continue
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=["entity_id", "first_ts"])
    return pd.concat(parts, ignore_index=True)


def learning(alarms: pd.DataFrame, first_seen: pd.DataFrame | None, period: pd.Timedelta = LEARNING) -> pd.Series:
    """Per alarm row: whether the detector had watched its entity for less than ``period`` (its first
    minute in ``first_seen``, :func:`read_first_seen`, is less than ``period`` before the alarm). Its daily
    profile has not seen that time of day yet, so a move that is the estate's daily rhythm (a market open, a
    batch window) scores as extreme as a fault: such a row's sure score confirms nothing alone. Entities
    without a first minute there (job and stage runs, judged against their own earlier runs) never learn,
    nor does a breach of a feed's SLA (an optional ``kind`` column of ``SLA_KINDS``): a rule, not a
    learned day."""
    if first_seen is None or first_seen.empty or alarms.empty:
        return pd.Series(False, index=alarms.index)
    first = pd.to_datetime(first_seen["first_ts"], utc=True)
    since = pd.Series(first.to_numpy(), index=first_seen["entity_id"].astype(str)).groupby(level=0).min()
    starts = pd.to_datetime(alarms["entity_id"].astype(str).map(since), utc=True)
    ts = pd.to_datetime(alarms["ts"], utc=True)
    out = ((ts - starts) < period).fillna(False).astype(bool).set_axis(alarms.index)
    if "kind" in alarms.columns:
        out &= ~alarms["kind"].astype(str).isin(SLA_KINDS)
    return out


def group_alarms(
    alarms: pd.DataFrame,
    edges: Iterable[tuple[str, str]] | Mapping[str, set[str]],
    *,
    gap: pd.Timedelta = DEFAULT_GAP,
    min_entities: int = DEFAULT_MIN_ENTITIES,
    sure_score: float = DEFAULT_SURE_SCORE,
    persist: int = DEFAULT_PERSIST,
    repeat_run: int = DEFAULT_REPEAT_RUN,
) -> list[Episode]:
    """Group alarm rows (columns ``ts, entity_id, series, score``; e.g. the rows of ``intelligence.anomalies``
    that :data:`ALARMS_SQL` reads) into episodes, oldest first. An optional ``delta`` column (observed less
    baseline) gives each episode the series that rose and fell (``rising``, ``falling``). Rows whose
    optional ``is_alarm`` column is false are the detector's damped repeats: read only with ``repeat_run``
    (see the module doc).
    ``edges``: the dependency edges (source depends on target), or the :func:`related` map built from them
    once. Entities outside the graph relate only to themselves. Raises ValueError when a column is
    missing."""
    a = label_alarms(
        alarms,
        edges,
        gap=gap,
        min_entities=min_entities,
        sure_score=sure_score,
        persist=persist,
        repeat_run=repeat_run,
    )
    if a.empty:
        return []
    # rows are in time order; a stable sort by episode keeps that order inside each episode
    order = np.argsort(a["episode"].to_numpy(), kind="stable")
    ep = a["episode"].to_numpy()[order]
    ts = list(a["ts"].iloc[order])
    ent = a["entity_id"].astype(str).to_numpy()[order]
    ser = a["series"].astype(str).to_numpy()[order]
    score = a["score"].to_numpy(dtype=float)[order]
    conf = a["confirmed"].to_numpy(dtype=bool)[order]
    delta = (
        pd.to_numeric(a["delta"], errors="coerce").to_numpy(dtype=float)[order]
        if "delta" in a.columns
        else np.full(len(a), np.nan)
    )
    bounds = [*np.flatnonzero(np.diff(ep)) + 1, len(ep)]
    out, lo = [], 0
    for hi in bounds:
        out.append(
            Episode(
                start=ts[lo],
                end=ts[hi - 1],
                alarms=int(hi - lo),
                entities=tuple(dict.fromkeys(ent[lo:hi].tolist())),
                series=tuple(dict.fromkeys(ser[lo:hi].tolist())),
                peak_score=float(np.nanmax(score[lo:hi])) if not np.isnan(score[lo:hi]).all() else float("nan"),
                confirmed=bool(conf[lo]),
                rising=tuple(dict.fromkeys(ser[lo:hi][delta[lo:hi] > 0].tolist())),
                falling=tuple(dict.fromkeys(ser[lo:hi][delta[lo:hi] < 0].tolist())),
            )
        )
        lo = hi
    return out


# the streaming detector's sources (cms_dagster.detect.pipeline.SOURCES): only their quiet period damps the
# score of a repeat; a run verdict (sources batch and stage) has a kind at any score, and no quiet period
STREAM_SOURCES = ("infra", "feed")
# the rows of intelligence.anomalies that are alarms or the streaming detector's damped repeats (kind not
# 'none', score below the alarm level)
ALARM_ROWS = "(is_alarm or (kind <> 'none' and source in ({})))".format(
    ", ".join(f"'{x}'" for x in STREAM_SOURCES)
)
_ROWS_SQL = (
    "select ts, series, entity_id, metric, score, kind, is_alarm, observed, observed - baseline as delta "
    "from intelligence.anomalies where {rows} and ts >= ? and ts < ? order by ts, series"
)
ALARMS_SQL = _ROWS_SQL.format(rows="is_alarm")  # the alarms over [?, ?)
ALARMS_AND_REPEATS_SQL = _ROWS_SQL.format(rows=ALARM_ROWS)  # and the damped repeats (``repeat_run``)


class NoAlarmsTable(LookupError):
    """The warehouse has no intelligence.anomalies table: detection has not run there yet."""

    def __init__(self) -> None:
        super().__init__(
            "the warehouse has no intelligence.anomalies table yet: materialize the intelligence/anomalies "
            "asset (the Dagster UI, or `cms demo`) first"
        )


WORK_HOURS = pd.Timedelta(hours=6)  # stage runs read before the window (a long one may have begun earlier)


def _naive(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None)


def read_stage_runs(
    query: Callable[[str, list], pd.DataFrame], since: dt.datetime, until: dt.datetime, marts_schema: str = "marts"
) -> pd.DataFrame:
    """The stage runs under way at some time in [since, until) (UTC; ``WORK_SQL``), columns ``entity_id,
    started_ts, finished_ts``; none when the warehouse has no stage runs (yet)."""
    try:
        return query(WORK_SQL.format(marts=marts_schema), [_naive(since), _naive(until)])
    except Exception:  # no stage runs in this warehouse (yet): nothing is explained by them
        return pd.DataFrame(columns=["entity_id", "started_ts", "finished_ts"])


def _read(query: Callable[[str, list], pd.DataFrame], sql: str, params: list) -> pd.DataFrame:
    try:
        return query(sql, params)
    except Exception as exc:  # DuckDB's CatalogException, Snowflake's ProgrammingError, ...
        if "anomalies" in str(exc).lower():
            raise NoAlarmsTable() from None
        raise


RECUR_DAYS = 3  # earlier days looked at for the same episode at the same time of day
RECUR_MIN_DAYS = 2  # of which at least this many must have had it
RECUR_WEEKS = 2  # earlier weeks looked at for the same episode at the same time on the same weekday
# of which at least this many must have had it: once a week before is a coincidence as often as a rhythm (a
# feed delayed at 23:15 on a Friday is not the schedule because it was delayed at 23:15 the Friday before)
RECUR_MIN_WEEKS = 2
RECUR_TOLERANCE = pd.Timedelta(minutes=20)  # how far from the same clock time it may have started
SCHEDULE_LOOKBACK = pd.Timedelta(days=7 * RECUR_WEEKS) + RECUR_TOLERANCE


def recurs(
    episode: Episode,
    earlier: Iterable[Episode],
    *,
    every_entity: bool = True,
    confirmed_only: bool = True,
    days: int = RECUR_DAYS,
    min_days: int = RECUR_MIN_DAYS,
    weeks: int = RECUR_WEEKS,
    min_weeks: int = RECUR_MIN_WEEKS,
    tolerance: pd.Timedelta = RECUR_TOLERANCE,
) -> bool:
    """Whether ``episode`` came at a time the estate alarms anyway: an episode of ``earlier`` on its entities
    began within ``tolerance`` of the same time of day on at least ``min_days`` of the ``days`` days before
    it, or of the same time on the same weekday in at least ``min_weeks`` of the ``weeks`` weeks before
    (batch windows and market opens alarm every day or every week at the same time; an incident does not,
    and one earlier week alone may be an earlier fault at the same time).

    ``every_entity`` (default): each of the episode's entities must recur on its own (a fault that hits
    during the nightly batch moves something the batch does not: a stage, a job, a second resource);
    otherwise earlier episodes on any of its entities count together. ``confirmed_only`` (default): only
    confirmed earlier episodes count (a feed that is only noisy at its open, lone alarms, is news when that
    noise is corroborated). ``days=0`` or ``weeks=0`` looks at weeks or days alone. ``earlier`` must reach
    back ``SCHEDULE_LOOKBACK`` before it (it may hold the episode itself and later ones)."""
    starts: dict[str, list[pd.Timestamp]] = {}
    for e in earlier:
        if e is not episode and e.start < episode.start and (e.confirmed or not confirmed_only):
            for x in e.entities:
                starts.setdefault(x, []).append(e.start)
    groups = [(x,) for x in episode.entities] if every_entity else [episode.entities]

    def near(group: tuple[str, ...], at: pd.Timestamp) -> bool:
        return any(abs(t - at) <= tolerance for x in group for t in starts.get(x, ()))

    def again(group: tuple[str, ...]) -> bool:
        daily = sum(near(group, episode.start - pd.Timedelta(days=k)) for k in range(1, days + 1))
        if days and daily >= min_days:
            return True
        weekly = sum(near(group, episode.start - pd.Timedelta(days=7 * k)) for k in range(1, weeks + 1))
        return bool(weeks) and weekly >= min(min_weeks, weeks)

    return bool(episode.entities) and all(again(g) for g in groups)


def recurs_daily(episode: Episode, earlier: Iterable[Episode]) -> bool:
    """Whether an episode (confirmed or not) on one of ``episode``'s entities began at the same time of day
    on 2 of the 3 days before it (:func:`recurs` on days alone, the loosest reading)."""
    return recurs(episode, earlier, every_entity=False, confirmed_only=False, weeks=0)


def is_schedule(episode: Episode, earlier: Iterable[Episode]) -> bool:
    """Whether ``episode`` is the estate's rhythm rather than news, read loosely: an episode (confirmed or
    not) on one of its entities began at that time of day on 2 of the 3 days before, or on that weekday
    both weeks before (:func:`recurs`). ``cms rca incident --latest``, the incidents and ``cms detect
    alarms`` use the stricter :func:`explained_by_schedule`."""
    return recurs(episode, earlier, every_entity=False, confirmed_only=False)


def explained_by_schedule(episode: Episode, earlier: Iterable[Episode]) -> bool:
    """Whether the schedule explains all of ``episode``: every one of its entities had a *confirmed*
    episode begin at that time of day on 2 of the 3 days before, or at that time on that weekday both of
    the two weeks before (:func:`recurs` with its defaults). Such an episode opens no incident, is skipped
    by ``cms rca incident --latest`` and is what ``cms detect alarms`` marks as the schedule."""
    return recurs(episode, earlier)


def latest_alarm(query: Callable[[str, list], pd.DataFrame]) -> pd.Timestamp | None:
    """The time (UTC) of the latest alarm in intelligence.anomalies, None when there is none."""
    last = _read(query, "select max(ts) as ts from intelligence.anomalies where is_alarm", [])["ts"].iloc[0]
    if last is None or pd.isna(last):
        return None
    t = pd.Timestamp(last)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def episodes_between(
    query: Callable[[str, list], pd.DataFrame],
    since: dt.datetime,
    until: dt.datetime,
    edges: Iterable[tuple[str, str]] | Mapping[str, set[str]],
    *,
    explain_work: bool = True,
    stage_runs: pd.DataFrame | None = None,
    **options: Any,
) -> list[Episode]:
    """The episodes of the alarms in ``intelligence.anomalies`` over [since, until) (UTC), oldest first.

    ``query(sql, params)`` runs SQL on the warehouse; ``options`` go to :func:`group_alarms`
    (``marts_schema``: where ``fct_stage_runs`` is, default ``marts``). With ``explain_work`` (default) and
    ``edges`` given as edges, alarms on resources that scheduled work explains (:func:`explained_by_work`,
    from ``fct_stage_runs``: ``stage_runs`` when the caller has read them with :func:`read_stage_runs` from
    ``WORK_HOURS`` before ``since`` or earlier) corroborate nothing. A sure score on an entity the detector
    had watched for less than ``LEARNING`` (:func:`learning`, from the marts' first minute of each resource
    and feed) confirms nothing alone. Raises NoAlarmsTable when detection has not run on this warehouse
    yet."""
    sql = ALARMS_AND_REPEATS_SQL if options.get("repeat_run") else ALARMS_SQL
    rows = _read(query, sql, [_naive(since), _naive(until)])
    marts = options.pop("marts_schema", "marts")
    sure = options.get("sure_score", DEFAULT_SURE_SCORE)
    any_sure = bool((rows["score"] >= sure).any()) if not rows.empty else False
    if explain_work and not isinstance(edges, Mapping) and not rows.empty:
        edges = list(edges)
        if stage_runs is None:
            stage_runs = read_stage_runs(query, since - WORK_HOURS, until, marts)
        # the week's ranges bound only sure alarms: read them when there is one
        ranges = read_ranges(query, since, until, marts) if any_sure else None
        explained = explained_by_work(rows, stage_runs, edges, ranges=ranges, sure_score=sure)
        rows = rows.assign(explained=explained.to_numpy())
    if any_sure:
        # a sure score counts once the detector has watched its entity for a day (``learning``)
        rows = rows.assign(learning=learning(rows, read_first_seen(query, since, until, marts)).to_numpy())
    return group_alarms(rows, edges, **options)
