"""Per-run judging of batch jobs and their stages: each run against the same entity's runs at the same slot.

A batch job is not a minute series. It runs a few times a day on a schedule (a cron), and how long a run
takes, how late it starts and how many records it handles depend on which run it is: the 06:00 run of a
job is not the 21:00 one, and a Saturday run handles fewer records. A streaming detector fed with one point
per run needs 100 runs (months for a daily job) before it can alarm, and batch windows that move by a few
minutes every day look like news to a minute-series profile. So runs are judged one by one:

- the **slot** of a run is the time of day it was scheduled for (the job's scheduled start; a stage takes
  its run's), learned from the history itself: the runs of the same entity whose slot lies within
  ``SLOT_TOLERANCE`` of this one's time of day, on a day of the same type (weekday or weekend), are its
  **peers** (its cron, read off its own past);
- a run that **failed** (its final attempt, after any retries) is an alarm of score 1;
- its **duration**, **start delay** and **records** are each compared with the last ``PEERS`` peers before
  it (at least ``MIN_PEERS``, else they are not judged: a new slot waits for three runs): a robust
  z-score ``(value - median) / scale``, the scale being 1.4826 x the peers' median absolute deviation,
  at least ``REL_FLOOR`` of the median and ``ABS_FLOOR`` (seconds, records) so that very regular runs do
  not make a small change look infinitely rare. A slower or later run (or one with fewer or more records)
  than its peers scores ``z^4 / (z^4 + Z_ALARM^4)``: 0.5, the alarm level, at ``Z_ALARM``. Quicker and
  earlier runs are not alarms;
- a stage that needed **retries** to succeed scores ``RETRY_SCORE`` per retry (capped at 0.9): one retry,
  a transient glitch, stays below the alarm level, two or more alarm.

Nothing is kept between calls: a verdict depends only on the runs before the judged one, which the caller
passes (``HISTORY`` back from the window). Plain Python (pandas, numpy); no Dagster.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pandas as pd

__all__ = [
    "ABS_FLOOR",
    "HISTORY",
    "MIN_PEERS",
    "PEERS",
    "REL_FLOOR",
    "RETRY_SCORE",
    "RUN_SOURCES",
    "SLOT_TOLERANCE",
    "Z_ALARM",
    "judge_runs",
    "judge_window",
]

SLOT_TOLERANCE = pd.Timedelta(minutes=20)  # peers: scheduled within this of the same time of day
PEERS = 20  # the latest peers a run is compared with
MIN_PEERS = 3  # fewer peers than this at the slot: the run's values are not judged (a failure still is)
REL_FLOOR = 0.05  # the smallest scale, as a fraction of the peers' median
ABS_FLOOR = {"duration_s": 30.0, "start_delay_s": 60.0, "records": 1.0}
Z_ALARM = 6.0  # robust z at which a run's score reaches the alarm level 0.5
RETRY_SCORE = 0.3  # per retry a stage needed before it succeeded
HISTORY = dt.timedelta(days=35)  # runs read before the judged window (their peers)
# which way a value is news: +1 only above the peers, 0 both ways
DIRECTION = {"duration_s": 1, "start_delay_s": 1, "records": 0}
COLUMNS = ("entity_id", "slot_ts", "ts", "status", "retries", "duration_s", "start_delay_s", "records")

# per source: SQL over the marts returning COLUMNS for runs finished in [?, ?) (UTC, naive)
RUN_SOURCES: dict[str, str] = {
    "batch": (
        "select 'job:' || job_key as entity_id, coalesce(scheduled_start_ts, actual_start_ts) as slot_ts, "
        "actual_end_ts as ts, status, 0 as retries, cast(duration_s as double) as duration_s, "
        "cast(start_delay_s as double) as start_delay_s, cast(records as double) as records "
        "from {marts}.fct_batch_runs where actual_end_ts >= ? and actual_end_ts < ? and status <> 'running'"
    ),
    "stage": (
        "select 'stage:' || s.stage_key as entity_id, coalesce(b.scheduled_start_ts, s.started_ts) as slot_ts, "
        "s.finished_ts as ts, s.status, cast(s.attempt - 1 as double) as retries, "
        "cast(s.duration_s as double) as duration_s, cast(null as double) as start_delay_s, "
        "cast(s.records as double) as records "
        "from {marts}.fct_stage_runs s left join {marts}.fct_batch_runs b on s.run_id = b.run_id "
        "where s.is_final_attempt and s.finished_ts >= ? and s.finished_ts < ? and s.status <> 'running'"
    ),
}


def _score(z: float) -> float:
    if not z > 0:
        return 0.0
    return float(z**4 / (z**4 + Z_ALARM**4))


def _peers(slots: np.ndarray, weekend: np.ndarray, i: int) -> np.ndarray:
    """Indices of the latest runs before ``i`` (time order) at the same slot and of the same day type,
    latest last; none when there are fewer than ``MIN_PEERS`` (the run is then not judged: a 06:00 run is
    no measure of a 21:00 one, nor a Saturday run of a Monday one)."""
    tol = SLOT_TOLERANCE.total_seconds()
    d = np.abs(slots[:i] - slots[i])
    peers = np.flatnonzero((np.minimum(d, 86_400 - d) <= tol) & (weekend[:i] == weekend[i]))
    return peers[-PEERS:] if len(peers) >= MIN_PEERS else peers[:0]


def judge_runs(runs: pd.DataFrame, since: dt.datetime | pd.Timestamp | None = None) -> pd.DataFrame:
    """Judge each run of ``runs`` (columns ``entity_id, slot_ts, ts, status, retries, duration_s,
    start_delay_s, records``; ``ts`` when the run finished, ``slot_ts`` when it was scheduled) against its
    peers before it; only runs finished at or after ``since`` get verdicts (the earlier ones are history).

    Returns one row per judged (run, metric) that scored above 0, columns ``series`` (entity|metric),
    ``entity_id``, ``metric``, ``ts``, ``score``, ``kind`` (failure, slow, late, spike, dip, retries),
    ``baseline`` (the peers' median; 0 for failure and retries) and ``observed``. Raises ValueError when a
    column is missing."""
    missing = [c for c in COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"runs need the columns {', '.join(COLUMNS)}; missing: {', '.join(missing)}")
    out: list[tuple] = []
    if runs.empty:
        return _frame(out)
    r = runs.copy()
    r["ts"] = pd.to_datetime(r["ts"], utc=True)
    r["slot_ts"] = pd.to_datetime(r["slot_ts"], utc=True).fillna(r["ts"])
    r = r.dropna(subset=["ts"]).sort_values(["entity_id", "ts"], kind="stable")
    start = None if since is None else pd.Timestamp(since)
    if start is not None and start.tzinfo is None:
        start = start.tz_localize("UTC")
    for entity, g in r.groupby("entity_id", sort=True):
        slot = g["slot_ts"]
        slots = (slot.dt.hour * 3600 + slot.dt.minute * 60 + slot.dt.second).to_numpy(dtype=float)
        weekend = (slot.dt.dayofweek >= 5).to_numpy()
        ts = g["ts"].tolist()
        status = g["status"].astype(str).tolist()
        retries = g["retries"].fillna(0).to_numpy(dtype=float)
        values = {m: g[m].to_numpy(dtype=float) for m in DIRECTION}
        for i in range(len(g)):
            if start is not None and ts[i] < start:
                continue
            if status[i] == "failed":
                out.append((f"{entity}|failed", entity, "failed", ts[i], 1.0, "failure", 0.0, 1.0))
                continue  # a failed run's duration and records say how it failed, not how it ran
            if retries[i] > 0:
                s = min(0.9, RETRY_SCORE * retries[i])
                out.append((f"{entity}|retries", entity, "retries", ts[i], s, "retries", 0.0, retries[i]))
            peers = _peers(slots, weekend, i)
            if not len(peers):
                continue
            ok = np.array([status[j] != "failed" for j in peers], dtype=bool)
            for metric, direction in DIRECTION.items():
                x = values[metric][i]
                hist = values[metric][peers[ok]]
                hist = hist[np.isfinite(hist)]
                if not np.isfinite(x) or len(hist) < MIN_PEERS:
                    continue
                med = float(np.median(hist))
                mad = float(np.median(np.abs(hist - med)))
                scale = max(1.4826 * mad, REL_FLOOR * abs(med), ABS_FLOOR[metric])
                z = (x - med) / scale
                if direction > 0:
                    s, kind = _score(z), ("slow" if metric == "duration_s" else "late")
                else:
                    s, kind = _score(abs(z)), ("spike" if z > 0 else "dip")
                if s > 0.0:
                    out.append((f"{entity}|{metric}", entity, metric, ts[i], s, kind, med, float(x)))
    return _frame(out)


def _frame(rows: list[tuple]) -> pd.DataFrame:
    cols = ["series", "entity_id", "metric", "ts", "score", "kind", "baseline", "observed"]
    df = pd.DataFrame(rows, columns=cols)
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    return df.sort_values(["ts", "series"], kind="stable").reset_index(drop=True)


def judge_window(
    query: Callable[[str, list], pd.DataFrame],
    source: str,
    start: dt.datetime,
    end: dt.datetime,
    marts_schema: str = "marts",
) -> tuple[pd.DataFrame, int, int]:
    """Judge the runs of ``source`` (a key of RUN_SOURCES) finished in [start, end), reading ``HISTORY``
    before ``start`` for their peers. Returns the verdicts (see :func:`judge_runs`, ``ts`` naive UTC), the
    number of runs judged and the number of entities they belong to."""

    def naive(t: dt.datetime) -> dt.datetime:
        return t.astimezone(dt.timezone.utc).replace(tzinfo=None)

    runs = query(RUN_SOURCES[source].format(marts=marts_schema), [naive(start - HISTORY), naive(end)])
    verdicts = judge_runs(runs, since=start)
    verdicts["ts"] = verdicts["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    first = pd.Timestamp(start)
    first = first.tz_localize("UTC") if first.tzinfo is None else first.tz_convert("UTC")
    mine = runs[pd.to_datetime(runs["ts"], utc=True) >= first]
    return verdicts, len(mine), int(mine["entity_id"].nunique())
