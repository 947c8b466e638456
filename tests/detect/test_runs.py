"""Per-run judging: each job or stage run against the same entity's runs at the same schedule slot."""

import numpy as np
import pandas as pd
import pytest

from cms_dagster.detect.runs import Z_ALARM, judge_runs

T0 = pd.Timestamp("2026-11-02 00:00", tz="UTC")  # a Monday


def _two_slot_job(days: int = 21, seed: int = 3) -> pd.DataFrame:
    """A job run at 06:00 (10 min, 40 k records) and at 21:00 (45 min, 2.4 M records) every day, starting a
    few minutes late by chance; weekend runs handle 60 % of the records and run a little quicker."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(days):
        day = T0 + pd.Timedelta(days=d)
        weekend = day.dayofweek >= 5
        for hour, minutes, records in ((6, 10, 40_000), (21, 45, 2_400_000)):
            slot = day + pd.Timedelta(hours=hour)
            delay = float(rng.uniform(0, 240))
            dur = minutes * 60 * float(rng.lognormal(0, 0.07)) * (0.9 if weekend else 1.0)
            rec = records * (0.6 if weekend else 1.0) * float(rng.lognormal(0, 0.05))
            rows.append(
                {
                    "entity_id": "job:eq.eod",
                    "slot_ts": slot,
                    "ts": slot + pd.Timedelta(seconds=delay + dur),
                    "status": "success",
                    "retries": 0,
                    "duration_s": dur,
                    "start_delay_s": delay,
                    "records": rec,
                }
            )
    return pd.DataFrame(rows)


def test_a_job_with_two_daily_windows_and_quieter_weekends_raises_no_alarm() -> None:
    verdicts = judge_runs(_two_slot_job())
    assert not (verdicts["score"] >= 0.5).any(), verdicts.sort_values("score").tail()


def test_a_run_three_times_slower_than_its_slot_alarms_and_one_as_long_as_the_other_slot_too() -> None:
    runs = _two_slot_job(days=19)  # the last day is a Friday
    last_morning = runs.index[runs["slot_ts"].dt.hour == 6][-1]
    runs.loc[last_morning, "duration_s"] *= 3
    verdicts = judge_runs(runs, since=runs.loc[last_morning, "slot_ts"])
    slow = verdicts[verdicts["score"] >= 0.5]
    assert list(slow["metric"]) == ["duration_s"] and list(slow["kind"]) == ["slow"]
    assert slow["baseline"].iloc[0] == pytest.approx(600, rel=0.15)
    # the 06:00 run taking as long as the 21:00 one is news too (45 min against ~10)
    runs = _two_slot_job(days=19)
    runs.loc[last_morning, "duration_s"] = 45 * 60
    assert (judge_runs(runs, since=runs.loc[last_morning, "slot_ts"])["score"] >= 0.5).any()


def test_a_failed_run_alarms_at_once_even_without_history_and_a_retry_alone_does_not() -> None:
    runs = _two_slot_job(days=1)
    runs.loc[0, "status"] = "failed"
    runs.loc[1, "retries"] = 1
    verdicts = judge_runs(runs)
    alarms = verdicts[verdicts["score"] >= 0.5]
    assert list(alarms["metric"]) == ["failed"] and alarms["kind"].iloc[0] == "failure"
    assert alarms["ts"].iloc[0] == runs.loc[0, "ts"]
    retried = verdicts[verdicts["metric"] == "retries"]
    assert len(retried) == 1 and 0 < retried["score"].iloc[0] < 0.5
    runs.loc[1, "retries"] = 2
    assert (judge_runs(runs).query("metric == 'retries'")["score"] >= 0.5).all()


def test_a_run_judged_only_from_since_and_only_from_the_runs_before_it() -> None:
    runs = _two_slot_job()
    since = T0 + pd.Timedelta(days=20)
    verdicts = judge_runs(runs, since=since)
    assert (verdicts["ts"] >= since).all()
    # a slow run later does not change the verdict of an earlier one (no look-ahead)
    later = runs.copy()
    later.loc[later.index[-1], "duration_s"] *= 5
    before = judge_runs(runs, since=since)
    after = judge_runs(later, since=since)
    pd.testing.assert_frame_equal(
        before[before["ts"] < runs["ts"].iloc[-1]], after[after["ts"] < runs["ts"].iloc[-1]]
    )


def test_the_score_reaches_the_alarm_level_at_z_alarm() -> None:
    runs = pd.DataFrame(
        {
            "entity_id": "stage:a.load",
            "slot_ts": [T0 + pd.Timedelta(days=d, hours=6) for d in (0, 1, 2, 3, 4, 7)],  # weekdays
            "ts": [T0 + pd.Timedelta(days=d, hours=7) for d in (0, 1, 2, 3, 4, 7)],
            "status": "success",
            "retries": 0,
            "duration_s": [1000.0, 1010.0, 990.0, 1000.0, 1000.0, 1000.0 + Z_ALARM * 50],
            "start_delay_s": np.nan,
            "records": 10.0,
        }
    )
    (row,) = judge_runs(runs, since=runs["ts"].iloc[-1]).itertuples()
    assert row.score == pytest.approx(0.5) and row.baseline == 1000.0  # scale: 5 % of the median


def test_judging_names_a_missing_column() -> None:
    with pytest.raises(ValueError, match="missing: status"):
        judge_runs(_two_slot_job().drop(columns=["status"]))
    assert judge_runs(_two_slot_job().iloc[0:0]).empty
