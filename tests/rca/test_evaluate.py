"""The RCA evaluation's parts: metrics, incident sampling, the detector-based start, evidence and baselines."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import duckdb
import numpy as np
import pandas as pd
import pytest
from marts_helpers import daily_stages, store_marts

from cms_dagster.detect.api import score_long_frame
from cms_dagster.detect.pipeline import ALARM
from cms_dagster.domain import load_ontology
from cms_dagster.otel.conventions import INCIDENT_KINDS
from cms_dagster.simulate.incidents import DEFAULT_MINUTES, Incident, candidates
from cms_harness.rca_evaluation import (
    ActivityIndex,
    EvidenceSettings,
    SamplingSettings,
    ac_at_k,
    avg_at_5,
    detect_start,
    entity_order,
    evidence_frame,
    max_z_ranking,
    random_expectation,
    random_shuffles,
    rank_of,
    sample_incidents,
    search_windows,
    seasonal_adjust,
)

U = dt.timezone.utc
T0 = dt.datetime(2026, 11, 16, tzinfo=U)


# --- metrics ---------------------------------------------------------------------------------------------


def test_ac_at_k_counts_undetected_and_unranked_incidents_as_misses() -> None:
    ranks = [1, 2, 3, None, 7]
    assert ac_at_k(ranks, 1) == pytest.approx(1 / 5)
    assert ac_at_k(ranks, 3) == pytest.approx(3 / 5)
    assert ac_at_k(ranks, 10) == pytest.approx(4 / 5)
    assert ac_at_k([], 1) == 0.0


def test_avg_at_5_is_the_mean_of_ac1_to_ac5() -> None:
    ranks = [1, 2, 5, 6, None]
    expected = np.mean([1 / 5, 2 / 5, 2 / 5, 2 / 5, 3 / 5])
    assert avg_at_5(ranks) == pytest.approx(expected)
    assert avg_at_5([1, 1]) == 1.0


def test_entities_are_deduplicated_keeping_their_best_rank() -> None:
    hyps = ["feed:a", "feed:a", "rds:b", "feed:a", "stage:c"]
    order = entity_order(hyps)
    assert order == ["feed:a", "rds:b", "stage:c"]
    assert rank_of(order, "rds:b") == 2
    assert rank_of(order, "eks:x/y") is None


def test_random_ranking_expectation_matches_seeded_shuffles() -> None:
    cands = [["a", "b", "c", "d"], ["a", "b"], None, ["x", "y", "z"]]
    truths = ["a", "b", "q", "w"]  # the third is undetected, the fourth's truth is not a candidate
    mc = random_shuffles(cands, truths, shuffles=4000, seed=3)
    for k in (1, 2, 3):
        exact = (
            sum(
                random_expectation(len(c or []), bool(c) and t in c, k)
                for c, t in zip(cands, truths, strict=True)
            )
            / 4
        )
        assert mc[k] == pytest.approx(exact, abs=0.02)
    assert random_expectation(4, True, 1) == 0.25
    assert random_expectation(4, False, 3) == 0.0
    assert random_expectation(2, True, 5) == 1.0


# --- sampling ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ontology():
    return load_ontology()


@pytest.fixture(scope="module")
def sampled(ontology) -> tuple[SamplingSettings, list[Incident]]:
    s = SamplingSettings(seed=11)
    return s, sample_incidents(ontology, s)


def test_sampling_draws_every_kind_on_valid_targets_with_default_durations(ontology, sampled) -> None:
    s, incs = sampled
    assert len(incs) == s.per_kind * len(INCIDENT_KINDS) >= 60
    assert Counter(i.kind for i in incs) == {k: s.per_kind for k in INCIDENT_KINDS}
    for i in incs:
        assert i.root_cause in candidates(ontology, i.kind)
        assert i.end - i.start == dt.timedelta(minutes=DEFAULT_MINUTES[i.kind])


def test_sampled_incidents_are_apart_after_the_warmup_and_inside_the_month(sampled) -> None:
    s, incs = sampled
    starts = sorted(i.start for i in incs)
    assert starts[0] >= s.start + s.warmup
    assert min(b - a for a, b in zip(starts, starts[1:], strict=False)) >= s.min_gap
    assert max(i.end for i in incs) + s.tail <= s.start + dt.timedelta(days=s.days)
    # random times: spread over the month, not bunched at one hour of the day
    assert len({i.start.hour for i in incs}) >= 12
    assert (starts[-1] - starts[0]) > dt.timedelta(days=20)


def test_sampling_is_reproducible_from_its_seed_and_changes_with_it(ontology, sampled) -> None:
    s, incs = sampled
    again = sample_incidents(ontology, s)
    other = sample_incidents(ontology, SamplingSettings(seed=12))
    key = [(i.kind, i.root_cause, i.start) for i in incs]
    assert key == [(i.kind, i.root_cause, i.start) for i in again]
    assert key != [(i.kind, i.root_cause, i.start) for i in other]


def test_sampling_prefers_but_does_not_force_busy_times(ontology, sampled) -> None:
    s, incs = sampled
    activity = ActivityIndex(ontology, s.start, s.start + dt.timedelta(days=s.days))
    busy = [activity.active(i.kind, i.root_cause, i.start, DEFAULT_MINUTES[i.kind]) for i in incs]
    assert sum(busy) >= 0.6 * len(incs)
    never = SamplingSettings(seed=11, active_share=0.0, per_kind=4)
    loose = sample_incidents(ontology, never)
    busy_loose = [activity.active(i.kind, i.root_cause, i.start, DEFAULT_MINUTES[i.kind]) for i in loose]
    assert sum(busy_loose) < len(loose)
    # a job failure is its stage failing: it is placed over a run of the stage even when nothing else is
    failures = [i for i in loose if i.kind == "job_failure"]
    assert failures
    assert all(activity.active(i.kind, i.root_cause, i.start, DEFAULT_MINUTES[i.kind]) for i in failures)


@pytest.mark.parametrize("seed", [20270501, 20270601])
def test_job_failures_land_on_runs_of_their_stage_even_in_a_crowded_month(ontology, seed: int) -> None:
    # these seeds once placed job failures at idle times (the month's free busy times were used up by then)
    s = SamplingSettings(seed=seed)
    activity = ActivityIndex(ontology, s.start, s.start + dt.timedelta(days=s.days))
    failures = [i for i in sample_incidents(ontology, s) if i.kind == "job_failure"]
    assert len(failures) == s.per_kind
    assert all(activity.active(i.kind, i.root_cause, i.start, DEFAULT_MINUTES[i.kind]) for i in failures)


def test_a_stage_is_busy_when_its_job_runs() -> None:
    ont = load_ontology()
    activity = ActivityIndex(ont, T0, T0 + dt.timedelta(days=7))
    # equities.eod_pricing runs at 21:00 UTC on weekdays; its ingest stage starts a minute later
    assert activity.active(
        "job_failure", "stage:equities.eod_pricing.ingest", T0.replace(hour=20, minute=45), 45
    )
    assert not activity.active("job_failure", "stage:equities.eod_pricing.ingest", T0.replace(hour=10), 45)
    saturday = T0 + dt.timedelta(days=5)
    assert not activity.active(
        "job_failure", "stage:equities.eod_pricing.ingest", saturday.replace(hour=20, minute=45), 45
    )


def test_sampling_says_when_the_month_cannot_hold_the_incidents(ontology) -> None:
    with pytest.raises(ValueError, match="no room left"):
        sample_incidents(ontology, SamplingSettings(days=4, per_kind=2, min_gap=dt.timedelta(hours=12)))


# --- the start, from the detector ---------------------------------------------------------------------------


def _inc(kind: str, start: dt.datetime, minutes: int = 60) -> Incident:
    return Incident(kind, "feed:x", start, start + dt.timedelta(minutes=minutes))


def test_search_windows_surround_the_label_and_never_overlap() -> None:
    a = _inc("feed_outage", T0 + dt.timedelta(hours=10), 40)
    b = _inc("memory_leak", T0 + dt.timedelta(hours=14), 240)
    wins = search_windows([b, a])  # any order
    assert wins[1] == (a.start - dt.timedelta(minutes=30), b.start - dt.timedelta(minutes=30))
    assert wins[0] == (b.start - dt.timedelta(minutes=30), b.end + dt.timedelta(hours=3))


def test_the_start_is_the_first_alarm_in_the_window_not_the_label() -> None:
    alarms = pd.DataFrame(
        {
            "ts": pd.to_datetime(
                ["2026-11-18 09:00", "2026-11-18 10:12", "2026-11-18 10:05", "2026-11-18 13:00"]
            ),
            "series": ["rds:a|CPU", "feed:x|up", "feed:x|messages", "rds:a|CPU"],
        }
    )
    lo, hi = T0 + dt.timedelta(days=2, hours=10), T0 + dt.timedelta(days=2, hours=12)
    row = detect_start(alarms, lo, hi)
    assert row is not None
    assert row["ts"] == pd.Timestamp("2026-11-18 10:05", tz="UTC")
    assert row["series"] == "feed:x|messages"
    assert detect_start(alarms, lo + dt.timedelta(hours=4), hi + dt.timedelta(hours=4)) is None
    assert detect_start(alarms.iloc[:0], lo, hi) is None


def test_the_detector_on_a_tiny_series_starts_the_incident_at_its_step() -> None:
    rng = np.random.default_rng(5)
    times = pd.date_range("2026-11-16", periods=400, freq="min")
    values = 50 + rng.normal(0, 1, len(times))
    step_at = 300
    values[step_at:] += 25  # the fault
    frame = pd.DataFrame({"series": "rds:a|CPUUtilization", "ts": times, "value": values})
    an = score_long_frame(frame, ["series"], "ts", "value").anomalies(min_score=0.3)
    alarms = an[an["score"] >= ALARM].rename(columns={"time": "ts"})
    label = times[step_at].tz_localize("UTC").to_pydatetime()
    row = detect_start(alarms, label - dt.timedelta(minutes=30), label + dt.timedelta(hours=1))
    assert row is not None
    assert dt.timedelta(0) <= row["ts"] - label <= dt.timedelta(minutes=3)


# --- evidence and baselines --------------------------------------------------------------------------------


def _profile(times: pd.DatetimeIndex) -> np.ndarray:
    hours = (times.hour + times.minute / 60).to_numpy()
    return 100 + 80 * np.exp(-(((hours - 14) / 3) ** 2))  # a busy afternoon every day


def test_seasonal_adjustment_removes_the_daily_profile_and_keeps_a_fault() -> None:
    rng = np.random.default_rng(1)
    times = pd.date_range("2026-11-16", "2026-11-26", freq="min", inclusive="left", tz="UTC")
    busy = _profile(times) * rng.lognormal(0, 0.02, len(times))
    faulty = busy.copy()
    fault = (times >= "2026-11-25 14:00") & (times < "2026-11-25 15:00")
    faulty[fault] *= 4
    frame = pd.concat(
        [
            pd.DataFrame({"time": times, "entity": "feed:a", "metric": "messages", "value": busy}),
            pd.DataFrame({"time": times, "entity": "feed:b", "metric": "messages", "value": faulty}),
        ]
    )
    lo, hi = pd.Timestamp("2026-11-25 08:00", tz="UTC"), pd.Timestamp("2026-11-25 16:00", tz="UTC")
    out = seasonal_adjust(frame, lo, hi, reference_days=7)
    assert out["time"].min() >= lo and out["time"].max() < hi
    a = out[out["entity"] == "feed:a"]["value"].to_numpy()
    raw_a = busy[(times >= lo) & (times < hi)]
    assert a.std() < 0.2 * raw_a.std()  # the afternoon bump is gone
    b = out[out["entity"] == "feed:b"].set_index("time")["value"]
    level = b[b.index < "2026-11-25 14:00"].median()
    assert b[(b.index >= "2026-11-25 14:00") & (b.index < "2026-11-25 15:00")].median() == pytest.approx(
        4 * level, rel=0.15
    )


def test_an_outage_on_a_reference_day_does_not_disturb_the_adjustment() -> None:
    rng = np.random.default_rng(3)
    times = pd.date_range("2026-11-30", "2026-12-11 10:41", freq="min", inclusive="left", tz="UTC")
    night_and_day = np.where((times.hour >= 7) & (times.hour < 21), 1500.0, 60.0)
    clean = np.round(night_and_day * rng.lognormal(0, 0.08, len(times)))
    broken = clean.copy()
    broken[(times >= "2026-12-10 01:30") & (times < "2026-12-10 02:10")] = 0  # yesterday's outage
    lo, hi = pd.Timestamp("2026-12-11 02:41", tz="UTC"), pd.Timestamp("2026-12-11 10:41", tz="UTC")
    outs = [
        seasonal_adjust(
            pd.DataFrame({"time": times, "entity": "feed:x", "metric": "messages", "value": v}), lo, hi
        )
        for v in (clean, broken)
    ]
    assert np.allclose(outs[0]["value"], outs[1]["value"])
    assert outs[1]["value"].min() > 0.5 * outs[1]["value"].median()  # no outage-like dip appears


def test_a_stepped_series_is_rescaled_onto_its_steps_exactly() -> None:
    times = pd.date_range("2026-11-16", "2026-11-26", freq="min", inclusive="left", tz="UTC")
    # a staleness rounded to 0.01 s, usually 0.05, at 0.06 around 09:00 every day
    steps = np.where(times.hour == 9, 0.06, 0.05)
    frame = pd.DataFrame({"time": times, "entity": "feed:a", "metric": "staleness_s", "value": steps})
    lo, hi = pd.Timestamp("2026-11-25 08:00", tz="UTC"), pd.Timestamp("2026-11-25 16:00", tz="UTC")
    out = seasonal_adjust(frame, lo, hi)
    assert (out["value"] == 0.05).all()  # 0.06 x (0.05 / 0.06) is 0.05 itself, not 0.05 + 1e-17


def test_without_three_reference_days_a_series_stays_as_it_is() -> None:
    times = pd.date_range("2026-11-16", "2026-11-18 16:00", freq="min", inclusive="left", tz="UTC")
    frame = pd.DataFrame({"time": times, "entity": "feed:a", "metric": "messages", "value": _profile(times)})
    lo, hi = pd.Timestamp("2026-11-18 08:00", tz="UTC"), pd.Timestamp("2026-11-18 16:00", tz="UTC")
    out = seasonal_adjust(frame, lo, hi, reference_days=7)  # Monday and Tuesday only: two references
    raw = frame[(frame["time"] >= lo) & (frame["time"] < hi)]["value"].to_numpy()
    assert np.allclose(out["value"].to_numpy(), raw)


def test_a_market_opening_on_sunday_evening_is_a_weekly_shape() -> None:
    # an FX-like feed: trading on weekdays, closed on Saturday, opening at 22:00 on Sunday; two weeks of it
    rng = np.random.default_rng(5)
    times = pd.date_range("2026-11-16", "2026-11-30", freq="min", inclusive="left", tz="UTC")
    dow, hour = times.day_of_week, times.hour
    trading = (dow < 5) | ((dow == 6) & (hour >= 22))
    msgs = np.where(trading, 900.0, 2.0) * rng.lognormal(0, 0.05, len(times))
    frame = pd.DataFrame({"time": times, "entity": "feed:ebs-fx", "metric": "messages", "value": msgs})
    lo, hi = pd.Timestamp("2026-11-29 16:00", tz="UTC"), pd.Timestamp("2026-11-30", tz="UTC")  # Sunday
    out = seasonal_adjust(frame, lo, hi).set_index("time")["value"]
    before, after = out[out.index < "2026-11-29 22:00"], out[out.index >= "2026-11-29 22:00"]
    # last Sunday is the one reference; without it the opening would read as a 450x volume spike
    assert after.median() == pytest.approx(before.median(), rel=0.2)
    # Saturday is not a reference for a Sunday: with no earlier Sunday in reach, it stays as it is
    none = seasonal_adjust(frame, lo, hi, reference_days=6, reference_weeks=0)
    raw = frame[(frame["time"] >= lo) & (frame["time"] < hi)]["value"].to_numpy()
    assert np.allclose(none["value"].to_numpy(), raw)


def test_max_z_ranks_the_entity_that_moved_most_against_its_history() -> None:
    times = pd.date_range("2026-11-20 06:00", periods=480, freq="min", tz="UTC")
    rng = np.random.default_rng(2)
    start = times[360]
    rows = []
    for ent, shift in (("rds:a", 0.0), ("feed:b", 8.0), ("eks:c/d", 3.0)):
        v = 10 + rng.normal(0, 1, len(times))
        v[360:] += shift
        rows.append(pd.DataFrame({"time": times, "entity": ent, "metric": "m", "value": v}))
    up = np.ones(len(times))
    up[400:] = 0  # a constant series that drops scores from 1 % of its magnitude
    rows.append(pd.DataFrame({"time": times, "entity": "feed:z", "metric": "up", "value": up}))
    ranked = max_z_ranking(pd.concat(rows), start)
    assert [e for e, _ in ranked][:2] == ["feed:z", "feed:b"]
    assert dict(ranked)["feed:z"] == pytest.approx(100)
    assert ranked[-1][0] == "rds:a"


@pytest.fixture
def marts() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("set TimeZone='UTC'")
    minutes = pd.date_range("2026-11-16", "2026-11-26", freq="min", inclusive="left")
    rng = np.random.default_rng(4)
    infra = pd.DataFrame(
        {
            "entity_id": "rds:orders-db",
            "metric": "CPUUtilization",
            "namespace": "AWS/RDS",
            "minute_ts": minutes,
            "avg_value": 20 + rng.normal(0, 1, len(minutes)),
        }
    )
    feed = pd.DataFrame(
        {
            "feed_id": "cme-mdp",
            "minute_ts": minutes,
            "is_up": True,
            "latency_ms": 12.0 * rng.lognormal(0, 0.05, len(minutes)),
            "staleness_s": 1.0,
            "messages": 5000,
            "missing_fields": 0,
            "invalid_values": 0,
        }
    )
    store_marts(con, infra, feed, stages=daily_stages(["success"] * 9 + ["failed"]))
    return con


def test_evidence_gives_run_series_a_week_of_history_and_minute_series_hours(marts) -> None:
    def query(sql: str, params: list) -> pd.DataFrame:
        return marts.execute(sql, params).df()

    start = dt.datetime(2026, 11, 25, 20, 0, tzinfo=U)
    ev = EvidenceSettings()
    frame = evidence_frame(query, start, ev)
    assert list(frame.columns) == ["time", "entity", "metric", "value"]
    spans = frame.groupby(["entity", "metric"])["time"].agg(["min", "max", "count"])
    cpu = spans.loc[("rds:orders-db", "CPUUtilization")]
    assert cpu["min"] == pd.Timestamp(start - ev.history) and cpu["max"] < pd.Timestamp(start + ev.horizon)
    failed = spans.loc[("stage:equities.eod_pricing.ingest", "failed")]
    assert failed["min"] >= pd.Timestamp(start - ev.run_history) and failed["count"] == 8  # 18th .. 25th
    assert ("feed:cme-mdp", "up") in spans.index and ("job:equities.eod_pricing", "duration_s") in spans.index
    assert ("stage:equities.eod_pricing.ingest", "retries") in spans.index
    stage = frame[(frame["entity"] == "stage:equities.eod_pricing.ingest") & (frame["metric"] == "failed")]
    assert stage["value"].iloc[-1] == 1.0 and stage["value"].iloc[:-1].eq(0).all()


def test_evidence_keeps_staleness_as_stored_and_adjusts_the_rest(marts) -> None:
    # give the feed a busy evening every day: twice the messages, and (for the test) twice the staleness
    marts.execute(
        "update marts.fct_feed_status set messages = messages * 2, staleness_s = staleness_s * 2 "
        "where hour(minute_ts) between 19 and 21"
    )

    def query(sql: str, params: list) -> pd.DataFrame:
        return marts.execute(sql, params).df()

    start = dt.datetime(2026, 11, 25, 19, 0, tzinfo=U)
    frame = evidence_frame(query, start, EvidenceSettings())
    feed = frame[frame["entity"] == "feed:cme-mdp"].set_index("time")
    msgs = feed[feed["metric"] == "messages"]["value"]
    stale = feed[feed["metric"] == "staleness_s"]["value"]
    assert msgs[msgs.index.hour >= 19].median() == pytest.approx(
        msgs[msgs.index.hour < 19].median(), rel=0.05
    )
    assert set(stale[stale.index.hour >= 19]) == {2.0} and set(stale[stale.index.hour < 19]) == {1.0}


def test_evidence_reads_only_the_reference_windows_and_adjusts_as_over_everything(marts) -> None:
    # a busy evening every day, so the seasonal adjustment has a shape to remove
    marts.execute("update marts.fct_infra_metrics set avg_value = avg_value * 3 where hour(minute_ts) between 19 and 21")
    read: list[int] = []

    def query(sql: str, params: list) -> pd.DataFrame:
        df = marts.execute(sql, params).df()
        read.append(len(df))
        return df

    start = dt.datetime(2026, 11, 25, 20, 0, tzinfo=U)
    ev = EvidenceSettings()
    frame = evidence_frame(query, start, ev)
    # what the seasonal adjustment makes of every minute row of the reference span (no window read alone)
    t0 = pd.Timestamp(start)
    lo, hi = t0 - ev.history, t0 + ev.horizon
    everything = marts.execute(
        "select entity_id as entity, metric, minute_ts as time, avg_value as value from marts.fct_infra_metrics "
        "where minute_ts >= ? and minute_ts < ?",
        [(lo - ev.reference_span).tz_localize(None).to_pydatetime(), hi.tz_localize(None).to_pydatetime()],
    ).df()
    everything["time"] = pd.to_datetime(everything["time"], utc=True)
    expected = seasonal_adjust(everything, lo, hi, ev.reference_days, ev.min_references, reference_weeks=ev.reference_weeks)
    cpu = frame[frame["entity"] == "rds:orders-db"].reset_index(drop=True)
    expected = expected.sort_values(["entity", "metric", "time"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(cpu, expected[cpu.columns], check_exact=True, check_dtype=False)
    assert len(cpu) == 8 * 60 and cpu["value"].std() < 2.0  # the evening's tripling is gone
    # the infra read: the window and its shifts by 1..7 days (the data begin on the 16th), 8 x 8 h of minutes
    assert read[0] == 8 * 8 * 60
