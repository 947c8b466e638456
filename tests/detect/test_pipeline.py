"""Detection over warehouse fact tables: hourly runs equal one run, re-runs are idempotent, back-fills
re-score the hours after them, anomalies land in intelligence.anomalies."""

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cms_dagster import settings
from cms_dagster.detect.pipeline import CheckpointStore, score_window
from cms_dagster.lake import Lake
from cms_dagster.warehouse.client import from_settings

U = dt.timezone.utc
T0 = dt.datetime(2026, 11, 16, tzinfo=U)


def _build_marts(wh, spike_at: dt.datetime, value_shift: float = 0.0) -> None:
    minutes = pd.date_range(T0.replace(tzinfo=None), periods=36 * 60, freq="min")
    rng = np.random.default_rng(1)
    cpu = 30 + 5 * np.sin(np.arange(len(minutes)) / 90) + rng.normal(0, 0.5, len(minutes)) + value_shift
    cpu[minutes >= spike_at.replace(tzinfo=None)] += 40  # the rds instance saturates
    infra = pd.DataFrame(
        {
            "entity_id": "rds:orders-db",
            "metric": "CPUUtilization",
            "namespace": "AWS/RDS",
            "minute_ts": minutes,
            "avg_value": cpu,
        }
    )
    feed = pd.DataFrame(
        {
            "feed_id": "cme-mdp",
            "minute_ts": minutes,
            "is_up": True,
            "latency_ms": 12 + rng.normal(0, 0.3, len(minutes)),
            "staleness_s": 1.0,
            "is_stale": False,
            "messages": 5000,
            "missing_fields": 0,
            "invalid_values": 0,
        }
    )
    stale = (minutes >= pd.Timestamp("2026-11-17 01:58")) & (minutes < pd.Timestamp("2026-11-17 02:08"))
    feed.loc[stale, "staleness_s"] = 600.0  # the feed is stale past its 30 s SLA for 10 minutes
    feed.loc[stale, "is_stale"] = True
    hours = minutes[0::60]
    runs = pd.DataFrame(
        {
            "run_id": [f"r{k}" for k in range(len(hours))],
            "job_key": "fx.spot_rates_snapshot",
            "status": "success",
            "scheduled_start_ts": hours,
            "actual_start_ts": minutes[5::60],
            "actual_end_ts": minutes[9::60][: len(hours)],
            "duration_s": 240.0,
            "start_delay_s": 30.0,
            "records": 12000,
        }
    )
    stages = pd.DataFrame(
        {
            "run_id": runs["run_id"],
            "stage_key": "fx.spot_rates_snapshot.ingest",
            "status": "success",
            "attempt": 1,
            "is_final_attempt": True,
            "started_ts": minutes[5::60],
            "finished_ts": minutes[7::60][: len(hours)],
            "duration_s": 120.0,
            "records": 12000,
        }
    )
    late = hours >= spike_at.replace(tzinfo=None)
    runs.loc[late, "status"] = "failed"  # the job fails from the spike on
    with wh.connect() as con:
        con.execute("create schema if not exists marts")
        for name, df in [
            ("fct_infra_metrics", infra),
            ("fct_feed_status", feed),
            ("fct_batch_runs", runs),
            ("fct_stage_runs", stages),
            ("dim_feed", pd.DataFrame({"feed_id": ["cme-mdp"], "staleness_sla_s": [30]})),
        ]:
            con.register("df", df)
            con.execute(f"create or replace table marts.{name} as select * from df")
            con.unregister("df")


@pytest.fixture
def env(cms_home: Path):
    s = settings.load()
    wh = from_settings(s)
    lake = Lake.from_settings(s)

    def write(source, a, b, df):
        wh.replace_span("intelligence.anomalies", df, "ts", a, b, {"source": source})

    return wh, lake, write


def _anoms(wh) -> pd.DataFrame:
    return wh.query(
        "select source, series, ts, score, kind, baseline, observed, is_alarm from intelligence.anomalies order by series, ts"
    )


@pytest.mark.slow
def test_hourly_runs_give_the_same_anomalies_as_one_run(env, tmp_path: Path) -> None:
    wh, lake, write = env
    spike = T0 + dt.timedelta(hours=30, minutes=20)
    _build_marts(wh, spike)
    rep = score_window(wh.query, write, lake.raw, T0, T0 + dt.timedelta(hours=36))
    one = _anoms(wh)
    assert rep.points > 36 * 60 * 7 and not rep.errors
    alarm = one[(one.series == "rds:orders-db|CPUUtilization") & one.is_alarm]
    assert alarm.ts.min() == pd.Timestamp(spike.replace(tzinfo=None))  # caught at once, no look-ahead
    assert set(one.columns) >= {"score", "kind", "baseline", "observed"}
    failed = one[(one.series == "job:fx.spot_rates_snapshot|failed") & one.is_alarm]
    assert failed.ts.min() == pd.Timestamp("2026-11-17 07:09")  # the first run after the spike, judged alone
    assert not one[one.source == "stage"].is_alarm.any()  # its stage ran as usual
    sla = one[one.source == "sla"]  # the stale feed, by rule: its third to fifth minute, after the 02:00 boundary
    assert sla.series.unique().tolist() == ["feed:cme-mdp|stale"] and sla.is_alarm.all()
    assert sla.ts.tolist() == list(pd.date_range("2026-11-17 02:00", "2026-11-17 02:02", freq="min"))
    # the same in hourly partitions, each from the previous checkpoint
    wh2 = from_settings(settings.load({"CMS_HOME": str(tmp_path / "h2")}))
    lake2 = Lake.from_settings(settings.load({"CMS_HOME": str(tmp_path / "h2")}))
    _build_marts(wh2, spike)

    def write2(source, a, b, df):
        wh2.replace_span("intelligence.anomalies", df, "ts", a, b, {"source": source})

    for h in range(36):
        score_window(wh2.query, write2, lake2.raw, T0 + dt.timedelta(hours=h), T0 + dt.timedelta(hours=h + 1))
    pd.testing.assert_frame_equal(_anoms(wh2), one)


@pytest.mark.slow
def test_rerun_is_idempotent_and_backfill_rescores_later_hours(env) -> None:
    wh, lake, write = env
    spike = T0 + dt.timedelta(hours=30)
    _build_marts(wh, spike)
    for h in range(0, 36, 6):
        score_window(wh.query, write, lake.raw, T0 + dt.timedelta(hours=h), T0 + dt.timedelta(hours=h + 6))
    before = _anoms(wh)
    score_window(wh.query, write, lake.raw, T0 + dt.timedelta(hours=12), T0 + dt.timedelta(hours=18))
    pd.testing.assert_frame_equal(_anoms(wh), before)
    # history changes before the spike (a late correction): back-filling hour 12..18 re-scores 18..36 too
    _build_marts(wh, spike, value_shift=0.0)
    with wh.connect() as con:
        con.execute(
            "update marts.fct_infra_metrics set avg_value = avg_value + 25 where minute_ts >= '2026-11-16 13:00' and minute_ts < '2026-11-16 14:00'"
        )
    rep = score_window(wh.query, write, lake.raw, T0 + dt.timedelta(hours=12), T0 + dt.timedelta(hours=18))
    assert rep.by_source["infra"] == (36 - 12) * 60  # from the 12:00 checkpoint through the last scored hour
    after = _anoms(wh)
    assert ((after.ts >= "2026-11-16 13:00") & (after.ts < "2026-11-16 14:00") & after.is_alarm).any()
    stored = CheckpointStore(lake.raw, "infra").times()
    assert max(stored) == T0 + dt.timedelta(hours=36) and T0 + dt.timedelta(hours=18) in stored


@pytest.mark.slow
def test_the_detectors_damped_repeats_are_stored_and_can_show_a_lone_move_holding(env) -> None:
    from cms_dagster.detect.episodes import episodes_between

    wh, lake, write = env
    spike = T0 + dt.timedelta(hours=30, minutes=20)
    _build_marts(wh, spike)  # the database's CPU jumps by 40 points at the spike and stays there
    score_window(wh.query, write, lake.raw, T0, T0 + dt.timedelta(hours=36))
    rows = _anoms(wh)
    assert (rows.is_alarm == (rows.score >= 0.5)).all()  # alarms are what they were: the score's alarm level
    cpu = rows[rows.series == "rds:orders-db|CPUUtilization"]
    first = cpu[cpu.is_alarm].ts.min()
    assert first == pd.Timestamp(spike.replace(tzinfo=None)) and cpu[cpu.is_alarm].score.max() >= 0.99
    # after the alarm the quiet period damps the score of the move that holds: those points are kept, with the
    # kind their undamped surprise gave them, below the score that is otherwise kept; the detector's level
    # baseline takes the new level after six minutes, and the repeats stop
    repeats = cpu[(cpu.ts > first) & ~cpu.is_alarm & (cpu.kind != "none")]
    minutes = ((repeats.ts - first) / pd.Timedelta(minutes=1)).astype(int).tolist()
    assert minutes == [1, 2, 3, 4, 5, 6] and (repeats.score < 0.3).all()
    assert ((rows.score >= 0.3) | (rows.kind != "none")).all()
    assert (rows[rows.source.isin(["batch", "stage"])].score >= 0.3).all()  # run verdicts as before
    # read with repeat_run, the repeats make the lone database's extreme move hold (no relations given: it
    # corroborates nothing else); by default they are not read and, alarming once, it stays a warning
    lo, hi = T0 + dt.timedelta(hours=30), T0 + dt.timedelta(hours=36)

    def lone(**options) -> list:
        eps = episodes_between(wh.query, lo, hi, [], **options)
        return [(e.start, e.alarms, e.confirmed) for e in eps if e.entities == ("rds:orders-db",)]

    at = pd.Timestamp(spike)
    assert lone() == [(at, 1, False)]
    assert lone(repeat_run=6) == [(at, 1, True)]
    assert lone(repeat_run=7) == [(at, 1, False)]
