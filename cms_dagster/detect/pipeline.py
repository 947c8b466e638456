"""Score the warehouse's fact tables hour by hour, carrying detector state in the lake.

Minute series (entity id + metric) come from ``fct_infra_metrics`` and ``fct_feed_status`` and go through
the streaming detector. Batch runs (``fct_batch_runs``) and stage runs (``fct_stage_runs``) are judged run
by run against the same entity's runs at the same schedule slot (``cms_dagster.detect.runs``): their
sources ``batch`` and ``stage`` need no checkpoint, only the runs of the weeks before. A feed down or stale past
its SLA for a few minutes in a row is an alarm by rule (``cms_dagster.detect.sla``, source ``sla``), whatever
the detector's history holds. A run over [start, end) restores the latest checkpoint at or before ``start`` (one
gzip'd JSON per source and hour boundary under ``checkpoints/detect/<source>/``), scores every point from
that checkpoint's time up to ``end`` in one pass (identical to hourly chunks), replaces the anomalies of
the re-scored span, and saves the checkpoint at ``end``. Checkpoints after ``end`` were derived from the
old history, so they are removed and the later hours that had been scored are re-scored in the same run,
in order: a back-fill re-runs the partitions after it.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
import pandas as pd

from cms_dagster.detect.api import DetectorState, score_long_frame
from cms_dagster.detect.runs import RUN_SOURCES, judge_window
from cms_dagster.detect.sla import judge_sla_window
from cms_dagster.lake import Zone
from cms_dagster.lake.layout import DETECT_CHECKPOINTS

CHECKPOINT_PREFIX = DETECT_CHECKPOINTS
# rows below this score are not kept, except the detector's damped repeats: points whose undamped surprise
# reached the alarm level (``kind`` not ``none``) in the quiet period after an alarm of their series, kept so
# that the warehouse records what the detector saw, not only its damped score (episodes.py reads them with
# ``repeat_run``); ``is_alarm`` stays the score's alarm level: nothing alarms or pages on them
MIN_SCORE = 0.3
ALARM = 0.5
KEEP_HOURLY = dt.timedelta(hours=48)  # older checkpoints are kept at midnight boundaries only
# from this many points (a back-fill, the demo's week; an hour is some 10,000) the series are scored in two
# processes, one per core: below it, starting them costs more than it saves
PARALLEL_POINTS = 200_000


def _workers(points: int) -> int:
    return min(2, os.cpu_count() or 1) if points >= PARALLEL_POINTS else 1


# (source, SQL selecting entity_id, metric, ts, value for ts in [?, ?)) over the marts schema
def _union(table: str, entity: str, time_col: str, metrics: list[tuple[str, str]], where: str = "") -> str:
    parts = [
        f"select {entity} as entity_id, '{m}' as metric, {time_col} as ts, cast({expr} as double) as value "
        f"from {{marts}}.{table} where {time_col} >= ? and {time_col} < ? and {expr} is not null{where}"
        for m, expr in metrics
    ]
    return "\nunion all\n".join(parts)


# per source: the union of (entity_id, metric, ts, value) selects; each takes [start, end) parameters
SOURCES: dict[str, tuple[str, int]] = {
    "infra": (
        _union(
            "fct_infra_metrics",
            "entity_id",
            "minute_ts",
            [("value", "avg_value")],
            " and namespace <> 'CMS/AWSConfig'",
        ).replace("'value' as metric", "metric as metric"),
        1,
    ),
    "feed": (
        _union(
            "fct_feed_status",
            "'feed:' || feed_id",
            "minute_ts",
            [
                ("up", "case when is_up then 1 else 0 end"),
                ("latency_ms", "latency_ms"),
                ("staleness_s", "staleness_s"),
                ("messages", "messages"),
                ("missing_fields", "missing_fields"),
                ("invalid_values", "invalid_values"),
            ],
        ),
        6,
    ),
}
ANOMALY_COLUMNS = [
    "source",
    "series",
    "entity_id",
    "metric",
    "ts",
    "score",
    "kind",
    "baseline",
    "observed",
    "is_alarm",
]


ANOMALY_DTYPES = {
    "source": str,
    "series": str,
    "entity_id": str,
    "metric": str,
    "ts": "datetime64[ns]",
    "score": float,
    "kind": str,
    "baseline": float,
    "observed": float,
    "is_alarm": bool,
}


@dataclass
class ScoreReport:
    points: int = 0
    series: int = 0
    anomalies: int = 0
    alarms: int = 0
    rescored_from: dt.datetime | None = None
    errors: dict[str, str] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)


def _key(t: dt.datetime) -> str:
    return f"{t:%Y%m%dT%H}"


def _parse_key(name: str) -> dt.datetime:
    return dt.datetime.strptime(name.split("/")[-1].split(".")[0], "%Y%m%dT%H").replace(
        tzinfo=dt.timezone.utc
    )


class CheckpointStore:
    def __init__(self, zone: Zone, source: str) -> None:
        self.zone, self.prefix = zone, f"{CHECKPOINT_PREFIX}/{source}/"

    def times(self) -> list[dt.datetime]:
        return [_parse_key(k) for k in self.zone.list(self.prefix) if k.endswith(".json.gz")]

    def load(self, t: dt.datetime) -> dict[str, bytes]:
        body = orjson.loads(gzip.decompress(self.zone.get(f"{self.prefix}{_key(t)}.json.gz")))
        return {k: v.encode() for k, v in body.items()}

    def save(self, t: dt.datetime, states: dict[str, DetectorState]) -> None:
        body = {k: s.to_json().decode() for k, s in states.items()}
        self.zone.put(
            f"{self.prefix}{_key(t)}.json.gz", gzip.compress(orjson.dumps(body), compresslevel=5, mtime=0)
        )

    def delete_after(self, t: dt.datetime) -> list[dt.datetime]:
        gone = [x for x in self.times() if x > t]
        for x in gone:
            self.zone.delete(f"{self.prefix}{_key(x)}.json.gz")
        return gone

    def prune(self, now: dt.datetime) -> None:
        for x in self.times():
            if x < now - KEEP_HOURLY and x.hour != 0:
                self.zone.delete(f"{self.prefix}{_key(x)}.json.gz")


def _naive(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None)


def score_window(
    query: Callable[[str, list], pd.DataFrame],
    write: Callable[[str, dt.datetime, dt.datetime, pd.DataFrame], None],
    zone: Zone,
    start: dt.datetime,
    end: dt.datetime,
    marts_schema: str = "marts",
    log: Callable[[str], None] = lambda _m: None,
) -> ScoreReport:
    """Score every series of every source over [start, end) (hour-aligned, UTC); see the module doc."""
    rep = ScoreReport()
    for source, (sql, n_selects) in SOURCES.items():
        store = CheckpointStore(zone, source)
        times = store.times()
        base = max((t for t in times if t <= start), default=None)
        later = [t for t in times if t > end]
        stop = max([end, *later])  # re-score the hours after the window that had been scored
        states = store.load(base) if base else {}
        begin = base or dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        df = query(sql.format(marts=marts_schema), [_naive(begin), _naive(stop)] * n_selects)
        df["series"] = df["entity_id"] + "|" + df["metric"]
        batch = score_long_frame(df, ["series"], "ts", "value", states=states, workers=_workers(len(df)))
        rep.errors.update({f"{source}:{k}": v for k, v in batch.errors.items()})
        an = batch.anomalies(min_score=MIN_SCORE, repeats=True)
        an = an.rename(columns={"time": "ts"})
        an["source"] = source
        an["entity_id"] = an["series"].astype(str).str.split("|", n=1).str[0]
        an["metric"] = an["series"].astype(str).str.split("|", n=1).str[1]
        an["is_alarm"] = an["score"] >= ALARM
        an = an.astype(ANOMALY_DTYPES)
        write(source, begin, stop, an[ANOMALY_COLUMNS])
        # the checkpoint at `end` must hold the states as of `end`: score up to it separately when later
        # hours were re-scored too (scores are identical either way; only the saved state differs)
        if stop > end:
            store.delete_after(end)
            head = df[df["ts"] < _naive(end)]
            end_states = score_long_frame(head, ["series"], "ts", "value", states=states, workers=_workers(len(head))).states
            store.save(end, end_states)
            store.save(stop, batch.states)
        else:
            store.save(end, batch.states)
        store.prune(stop)
        rep.points += batch.points
        rep.series += len(batch.states)
        rep.anomalies += len(an)
        rep.alarms += int(an["is_alarm"].sum())
        rep.by_source[source] = batch.points
        rep.rescored_from = min(rep.rescored_from or begin, begin)
        log(
            f"{source}: {batch.points:,} points in {len(batch.states)} series from {begin:%Y-%m-%d %H:%M} to {stop:%Y-%m-%d %H:%M}; {int(an['is_alarm'].sum())} alarm(s)"
        )
    for source in RUN_SOURCES:
        verdicts, runs, entities = judge_window(query, source, start, end, marts_schema)
        alarms = _store_verdicts(write, rep, source, verdicts, start, end, runs)
        rep.series += entities
        log(
            f"{source}: {runs:,} runs of {entities} entities judged per run from {start:%Y-%m-%d %H:%M} to "
            f"{end:%Y-%m-%d %H:%M}; {alarms} alarm(s)"
        )
    verdicts, minutes, feeds = judge_sla_window(query, start, end, marts_schema)
    alarms = _store_verdicts(write, rep, "sla", verdicts, start, end, minutes)
    log(
        f"sla: {minutes:,} minutes of {feeds} feeds from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}; "
        f"{alarms} alarm(s) (down or stale past the SLA for a few minutes in a row)"
    )
    return rep


def _store_verdicts(
    write: Callable[[str, dt.datetime, dt.datetime, pd.DataFrame], None],
    rep: ScoreReport,
    source: str,
    verdicts: pd.DataFrame,
    start: dt.datetime,
    end: dt.datetime,
    judged: int,
) -> int:
    """Write the verdicts of a source judged without a checkpoint (runs, SLA breaches) that score
    ``MIN_SCORE`` or more as the anomalies of [start, end), count them (and the ``judged`` runs or minutes)
    in ``rep``, and return how many are alarms."""
    an = verdicts[verdicts["score"] >= MIN_SCORE].copy()
    an["source"] = source
    an["is_alarm"] = an["score"] >= ALARM
    an = an.astype(ANOMALY_DTYPES)
    write(source, start, end, an[ANOMALY_COLUMNS])
    alarms = int(an["is_alarm"].sum())
    rep.points += judged
    rep.anomalies += len(an)
    rep.alarms += alarms
    rep.by_source[source] = judged
    return alarms
