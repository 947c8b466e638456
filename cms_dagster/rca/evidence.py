"""The evidence an incident is ranked on: the fact marts' series around a start, seasonally adjusted.

The one evidence step of CMS's root-cause analysis, used by ``cms rca incident`` and by the evaluation
(``benchmarks/rca_eval.py``), so that the measured figure describes what users run:

- :func:`evidence_frame`: the series the detector scores (``cms_dagster.detect.pipeline.SOURCES``: infra
  metrics by CloudWatch name, feed ``up``/``latency_ms``/``staleness_s``/``messages``/...), the job and stage
  runs as series (``RUN_SQL``: ``duration_s``/``failed``/``records``/``start_delay_s``, the detector judges
  them run by run), plus each stage's ``retries``, read from the
  warehouse as a long frame ``time, entity, metric, value`` named as :func:`cms_dagster.rca.rank_incident`
  reads them;
- :func:`seasonal_adjust`: each minute series divided by its usual daily shape over the same clock window
  of earlier days of the same type, so a batch window's daily load is not mistaken for a fault.

Plain Python (numpy, pandas); no Dagster.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cms_dagster.detect.pipeline import SOURCES

__all__ = [
    "LONG_COLUMNS",
    "EvidenceSettings",
    "evidence_frame",
    "reference_windows",
    "seasonal_adjust",
]

UTC = dt.timezone.utc


def _utc(t: dt.datetime | pd.Timestamp) -> pd.Timestamp:
    x = pd.Timestamp(t)
    return x.tz_localize("UTC") if x.tzinfo is None else x.tz_convert("UTC")


MINUTE_SOURCES = ("infra", "feed")  # one point per series and minute
RUN_SOURCES = ("batch", "stage")  # one point per run or stage attempt
_FAILED = "case when status = 'failed' then 1 else 0 end"


def _runs_sql(table: str, entity: str, time_col: str, metrics: list[tuple[str, str]], where: str = "") -> str:
    """(entity_id, metric, ts, value) selects, one per metric, for ``time_col`` in [?, ?)."""
    return "\nunion all\n".join(
        f"select {entity} as entity_id, '{m}' as metric, {time_col} as ts, cast({expr} as double) as value "
        f"from {{marts}}.{table} where {time_col} >= ? and {time_col} < ? and {expr} is not null{where}"
        for m, expr in metrics
    )


# the job and stage run series in long format: the detector judges runs on its own (detect.runs), the ranking
# still reads them as series with a week of history
RUN_SQL = {
    "batch": (
        _runs_sql(
            "fct_batch_runs",
            "'job:' || job_key",
            "actual_end_ts",
            [("duration_s", "duration_s"), ("failed", _FAILED), ("records", "records")],
            " and status <> 'running'",
        )
        + "\nunion all\n"
        + _runs_sql("fct_batch_runs", "'job:' || job_key", "actual_start_ts", [("start_delay_s", "start_delay_s")]),
        4,
    ),
    "stage": (
        _runs_sql(
            "fct_stage_runs",
            "'stage:' || stage_key",
            "finished_ts",
            [("duration_s", "duration_s"), ("failed", _FAILED)],
            " and status <> 'running'",
        ),
        2,
    ),
}
EXTRA_SQL = {
    # retries of each stage attempt (the job_failure signature reads "retries" next to "failed")
    "stage_retries": (
        "select 'stage:' || stage_key as entity_id, 'retries' as metric, finished_ts as ts, "
        "cast(retries as double) as value from {marts}.fct_stage_runs "
        "where finished_ts >= ? and finished_ts < ? and retries is not null and status <> 'running'",
        1,
    ),
}
LONG_COLUMNS = ["time", "entity", "metric", "value"]


@dataclass(frozen=True)
class EvidenceSettings:
    """Which window of which series goes to the ranking, around a (detected) start."""

    history: dt.timedelta = dt.timedelta(hours=6)  # minute series before the start
    horizon: dt.timedelta = dt.timedelta(hours=2)  # every series after the start
    run_history: dt.timedelta = dt.timedelta(days=7)  # run series (a point per run) before the start
    seasonal: bool = True  # adjust minute series by the same minutes of earlier days (see seasonal_adjust)
    reference_days: int = 7
    min_references: int = 3
    reference_weeks: int = 3
    min_weekend_references: int = 1
    # judged by their absolute value against a limit, so kept as stored: staleness against the feed's SLA
    # (data ten minutes old is late at night as by day), connections against the database's max_connections
    # (a pool is exhausted at its limit whatever the hour); dividing them by a usual shape would hide a breach
    absolute_metrics: tuple[str, ...] = ("staleness_s", "DatabaseConnections", "conn_ratio")

    @property
    def reference_span(self) -> dt.timedelta:
        """How far back before the window the minute series must reach for the seasonal adjustment."""
        return dt.timedelta(days=max(self.reference_days, 7 * self.reference_weeks))

    def describe(self) -> str:
        adj = (
            f"minute series seasonally adjusted: divided by the median daily shape (a ratio) of the same "
            f"clock window on the previous {self.reference_days} days and the same weekday of the previous "
            f"{self.reference_weeks} weeks, days of the same type only (weekday, Saturday, Sunday; at least "
            f"{self.min_references} such weekdays, {self.min_weekend_references} such weekend day); "
            f"{', '.join(self.absolute_metrics)} as stored (judged against their limits)"
            if self.seasonal
            else "minute series as stored (no seasonal adjustment)"
        )
        return (
            f"minute series [start - {_hours(self.history)}, start + {_hours(self.horizon)}), run series "
            f"[start - {_hours(self.run_history)}, start + {_hours(self.horizon)}); {adj}"
        )


def _hours(d: dt.timedelta) -> str:
    h = d.total_seconds() / 3600
    return f"{h / 24:g} days" if h >= 48 else f"{h:g} h"


def _long(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return pd.DataFrame(columns=LONG_COLUMNS)
    df = df.rename(columns={"entity_id": "entity", "ts": "time"})
    df["time"] = pd.to_datetime(df["time"], utc=True)
    df["value"] = df["value"].astype(float)
    df = df[np.isfinite(df["value"])]
    return df[LONG_COLUMNS]


def evidence_frame(
    query: Callable[[str, list], pd.DataFrame],
    start: dt.datetime,
    settings: EvidenceSettings | None = None,
    marts_schema: str = "marts",
) -> pd.DataFrame:
    """Long frame ``time, entity, metric, value`` around ``start`` from the four fact marts.

    The series are the minute series the detector scores (``cms_dagster.detect.pipeline.SOURCES``: infra
    metrics by CloudWatch name, feed ``up``/``latency_ms``/``staleness_s``/``messages``/...), the job and stage
    runs as series (``RUN_SQL``: ``duration_s``/``failed``/``records``/``start_delay_s``) plus each stage's
    ``retries``. Run series reach
    back ``run_history`` (a daily job has no run in the hours before a start, and a series without history
    cannot be judged); minute series reach back ``history``, seasonally adjusted when ``seasonal`` (except
    ``absolute_metrics``, which are judged against limits and kept as stored).
    Rows sharing a time within a series are averaged; rows are sorted by series and time.
    """
    s = settings or EvidenceSettings()

    def naive(t: dt.datetime) -> dt.datetime:
        return t.astimezone(UTC).replace(tzinfo=None)

    t0 = start.astimezone(UTC)
    end = t0 + s.horizon
    minute_from = t0 - s.history - (s.reference_span if s.seasonal else dt.timedelta(0))
    run_from = t0 - s.run_history
    # minute series: only the clock windows the seasonal adjustment reads (the window and its shifts by
    # the reference days), not the weeks between them: most of the rows, and of the reading, otherwise
    windows = (
        reference_windows(t0 - s.history, end, s.reference_days, s.reference_weeks)
        if s.seasonal
        else [(minute_from, end)]
    )
    only_windows = " or ".join("(ts >= ? and ts < ?)" for _ in windows)
    window_params = [naive(t) for w in windows for t in w]
    parts = []
    sources = {**{k: v for k, v in SOURCES.items() if k in MINUTE_SOURCES}, **RUN_SQL, **EXTRA_SQL}
    for name, (sql, n) in sources.items():
        sql = sql.format(marts=marts_schema)
        if name in MINUTE_SOURCES:
            sql = f"select * from (\n{sql}\n) as minute_rows where {only_windows}"
            params = [naive(minute_from), naive(end)] * n + window_params
        else:
            params = [naive(run_from), naive(end)] * n
        parts.append(_long(query(sql, params)))
    minute = pd.concat([p for p, name in zip(parts, sources, strict=True) if name in MINUTE_SOURCES])
    runs = pd.concat([p for p, name in zip(parts, sources, strict=True) if name not in MINUTE_SOURCES])
    if s.seasonal:
        keep = minute["metric"].isin(s.absolute_metrics)
        absolute, minute = minute[keep & (minute["time"] >= t0 - s.history)], minute[~keep]
        minute = seasonal_adjust(
            minute,
            t0 - s.history,
            end,
            s.reference_days,
            s.min_references,
            reference_weeks=s.reference_weeks,
            min_weekend_references=s.min_weekend_references,
        )
        minute = pd.concat([minute, absolute], ignore_index=True)
    frame = pd.concat([minute, runs], ignore_index=True)
    if frame.empty:
        return pd.DataFrame(columns=LONG_COLUMNS)
    frame = frame.groupby(["entity", "metric", "time"], as_index=False, sort=True)["value"].mean()
    return frame[LONG_COLUMNS]


def _reference_offsets(reference_days: int, reference_weeks: int) -> list[int]:
    """The earlier days a clock window is compared with: 1 .. ``reference_days`` and 7, 14, .. 7 x
    ``reference_weeks`` (the same weekday of earlier weeks)."""
    return sorted(set(range(1, max(int(reference_days), 0) + 1)) | {7 * w for w in range(1, reference_weeks + 1)})


def reference_windows(
    lo: dt.datetime | pd.Timestamp, hi: dt.datetime | pd.Timestamp, reference_days: int = 7, reference_weeks: int = 3
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The spans :func:`seasonal_adjust` reads for [lo, hi): that window and its shifts back by each
    reference day (UTC timestamps), newest first."""
    lo_ts, hi_ts = _utc(lo), _utc(hi)
    shifts = [pd.Timedelta(0)] + [pd.Timedelta(days=k) for k in _reference_offsets(reference_days, reference_weeks)]
    return [(lo_ts - d, hi_ts - d) for d in shifts]


def _day_type(times: pd.DatetimeIndex) -> np.ndarray:
    """0 for Monday to Friday, 5 for Saturday, 6 for Sunday (UTC): markets and batches keep weekday
    hours, and the two weekend days differ (FX opens on Sunday evening)."""
    dow = np.asarray(times.day_of_week)
    return np.where(dow < 5, 0, dow)


def _round_significant(a: np.ndarray, digits: int) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scale = 10.0 ** (digits - 1 - np.floor(np.log10(np.abs(a))))
        rounded = np.round(a * scale) / scale
    return np.where(np.isfinite(rounded) & (a != 0), rounded, a)


def seasonal_adjust(
    frame: pd.DataFrame,
    lo: dt.datetime | pd.Timestamp,
    hi: dt.datetime | pd.Timestamp,
    reference_days: int = 7,
    min_references: int = 3,
    *,
    reference_weeks: int = 3,
    min_weekend_references: int = 1,
) -> pd.DataFrame:
    """Remove each series' usual daily shape over [lo, hi), keeping its units and its own level.

    For each earlier day k = 1 .. ``reference_days`` and k = 7, 14, .. 7 x ``reference_weeks`` (the same
    weekday of earlier weeks), the log of the series over the same clock window shifted back k days, minus
    that day's median over the window, is day k's *shape*; the usual shape at a time t is the median of the
    shapes of the days of the same type as t (weekday, Saturday or Sunday, UTC), and the series is divided
    by its exponential. The shape is a ratio because counts and rates (messages, load, latency) scale with
    activity and so does their noise. Values <= 0 (a feed's minutes with no message, a counter at rest) are
    left out of the shapes and stay as they are. When fewer than ``min_references`` days give a shape at a
    weekday t (a median of two is not robust to one bad day), the point stays as it is; a Saturday or
    Sunday only has the same day of earlier weeks, so ``min_weekend_references`` of them are enough there
    (a market opening on Sunday evening is a weekly shape: without it, every feed would look faulty).

    So a series that follows its usual profile stays at its usual level, without the profile, and a fault
    keeps its size (latency 8x its usual level stays about 8x). ``frame`` is long (``time, entity, metric,
    value``, times on a shared grid such as minutes) and should reach max(``reference_days``, 7 x
    ``reference_weeks``) days back before ``lo``; the result covers [lo, hi) only.
    """
    if frame.empty:
        return frame.loc[:, LONG_COLUMNS].copy()
    lo_ts, hi_ts = _utc(lo), _utc(hi)
    offsets = _reference_offsets(reference_days, reference_weeks)
    f = frame.copy()
    f["time"] = pd.to_datetime(f["time"], utc=True)
    # only [lo, hi) and its shifts by the reference offsets are read: weeks of history between them are not
    # pivoted (most of the cost of a long reference span)
    needed = np.zeros(len(f), dtype=bool)
    for a, b in reference_windows(lo_ts, hi_ts, reference_days, reference_weeks):
        needed |= ((f["time"] >= a) & (f["time"] < b)).to_numpy()
    f = f[needed]
    if f.empty:
        return frame.loc[[], LONG_COLUMNS].copy()
    wide = f.pivot_table(
        index="time", columns=["entity", "metric"], values="value", aggfunc="mean", sort=True
    )
    values = wide.to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = pd.DataFrame(
            np.where(values > 0, np.log(np.where(values > 0, values, 1.0)), np.nan),
            index=wide.index,
            columns=wide.columns,
        )
    target = wide.index[(wide.index >= lo_ts) & (wide.index < hi_ts)]
    x = wide.reindex(target).to_numpy(dtype=float)
    kind = _day_type(target)
    shapes = []
    for k in offsets:
        back = target - pd.Timedelta(days=k)
        y = logs.reindex(back).to_numpy(dtype=float, copy=True)
        y[_day_type(back) != kind, :] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: no reference that day
            shapes.append(y - np.nanmedian(y, axis=0)[None, :])
    adjusted = x
    if shapes:
        stack = np.stack(shapes)
        count = np.sum(~np.isnan(stack), axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            usual = np.nanmedian(stack, axis=0)
        needed = np.where(kind == 0, min_references, min_weekend_references)[:, None]
        usual = np.where(count >= needed, usual, 0.0)
        # 12 significant digits: a stepped series (0.05, 0.06, ...) rescaled onto its own steps must land on
        # them exactly, or its history gets a spread of 1e-17 against which any change has an absurd z
        adjusted = np.where(x > 0, _round_significant(x * np.exp(-usual), 12), x)
    # back to long, time-major then series (what DataFrame.stack gives, without its index building), keeping
    # the points that exist
    n_times, n_series = adjusted.shape
    long = pd.DataFrame(
        {
            "time": np.repeat(target, n_series),
            "entity": np.tile(wide.columns.get_level_values("entity"), n_times),
            "metric": np.tile(wide.columns.get_level_values("metric"), n_times),
            "value": adjusted.reshape(-1),
        }
    )
    long = long[~np.isnan(x.reshape(-1))].dropna(subset=["value"])
    return long[LONG_COLUMNS].reset_index(drop=True)
