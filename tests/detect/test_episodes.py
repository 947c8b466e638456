"""Alarm episodes: alarms grouped through time and the dependency graph; only corroborated ones confirmed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cms_dagster.detect.episodes import (
    episodes_between,
    explained_by_schedule,
    explained_by_work,
    group_alarms,
    is_schedule,
    label_alarms,
    learning,
    recurs,
    recurs_daily,
    related,
    workers,
)

# job -> stages -> (db, feed); another job on the same db
EDGES = [
    ("job:a", "stage:a.ingest"),
    ("job:a", "stage:a.calc"),
    ("stage:a.calc", "stage:a.ingest"),
    ("stage:a.ingest", "feed:x"),
    ("stage:a.calc", "rds:db"),
    ("job:b", "stage:b.load"),
    ("stage:b.load", "rds:db"),
    ("job:c", "feed:y"),
]
T0 = pd.Timestamp("2026-11-20T10:00:00Z")


def _alarms(*rows: tuple[int, str, str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"ts": T0 + pd.Timedelta(minutes=m), "entity_id": e, "series": f"{e}|{metric}", "score": s}
            for m, e, metric, s in rows
        ]
    )


def test_related_reaches_dependencies_and_dependents_but_not_siblings() -> None:
    near = related(EDGES)
    assert near["stage:a.calc"] >= {"stage:a.calc", "stage:a.ingest", "feed:x", "rds:db", "job:a"}
    assert "stage:b.load" not in near["stage:a.calc"]  # shares the db, but neither depends on the other
    assert near["rds:db"] >= {"stage:a.calc", "stage:b.load", "job:a", "job:b"}


def test_a_fault_and_its_effects_are_one_confirmed_episode_from_the_first_alarm() -> None:
    eps = group_alarms(
        _alarms(
            (0, "feed:x", "messages", 0.6),
            (12, "stage:a.ingest", "duration_s", 0.55),
            (40, "job:a", "duration_s", 0.7),  # 28 min after the stage: still linked
        ),
        EDGES,
    )
    assert len(eps) == 1
    (e,) = eps
    assert e.confirmed and e.start == T0 and e.end == T0 + pd.Timedelta(minutes=40)
    assert e.entities == ("feed:x", "stage:a.ingest", "job:a") and e.alarms == 3
    assert e.to_dict()["start"] == "2026-11-20T10:00:00Z"


def test_lone_noise_is_not_confirmed_unless_it_is_extreme_and_persists() -> None:
    eps = group_alarms(
        _alarms(
            (0, "feed:x", "latency_ms", 0.6),
            (5, "feed:y", "messages", 0.6),
            (300, "rds:db", "CPU", 0.995),
            (600, "rds:db", "CPU", 0.995),
            (603, "rds:db", "CPU", 0.8),
        ),
        EDGES,
    )
    # feed:x and feed:y are unrelated: two episodes of one entity each, neither corroborated
    assert [(e.entities, e.alarms, e.confirmed) for e in eps] == [
        (("feed:x",), 1, False),
        (("feed:y",), 1, False),
        (("rds:db",), 1, False),  # sure, but one point: a spike, shown as a warning
        (("rds:db",), 2, True),  # sure, and it alarms again: it persists
    ]
    # persist=1: one sure point is enough (the rule before)
    assert [e.confirmed for e in group_alarms(_alarms((300, "rds:db", "CPU", 0.995)), EDGES, persist=1)] == [True]


def test_a_lone_extreme_move_confirms_only_when_its_own_series_alarms_again_after_it() -> None:
    def confirmed(*rows: tuple[int, str, str, float]) -> bool:
        (e,) = group_alarms(_alarms(*rows), EDGES)
        return e.confirmed

    # a feed that goes down stays down: staleness and up extreme at once, and both alarm again 5 min later
    assert confirmed(
        (0, "feed:x", "staleness_s", 1.0),
        (0, "feed:x", "up", 1.0),
        (5, "feed:x", "staleness_s", 0.999),
        (5, "feed:x", "up", 0.72),
    )
    # a latency that stays high: the second alarm on the series is far below the sure score, and counts
    assert confirmed((0, "feed:x", "latency_ms", 1.0), (5, "feed:x", "latency_ms", 0.9))
    # a blip: one bad record scores 1.0, and only other metrics of the feed move a little before or after it
    assert not confirmed(
        (0, "feed:x", "messages", 0.55),
        (10, "feed:x", "invalid_values", 1.0),
        (25, "feed:x", "messages", 0.6),
        (40, "feed:x", "missing_fields", 0.7),
    )
    # the series alarmed before its extreme point, never after it: the move did not hold
    assert not confirmed((0, "feed:x", "staleness_s", 0.69), (3, "feed:x", "staleness_s", 0.999))
    # a stage's slow run with a retry: two metrics of one run, one extreme; the next run decides
    assert not confirmed((0, "stage:b.load", "duration_s", 0.999), (2, "stage:b.load", "retries", 0.6))
    # a later extreme point on another series that then alarms again confirms
    assert confirmed(
        (0, "feed:x", "invalid_values", 1.0),
        (10, "feed:x", "messages", 0.995),
        (15, "feed:x", "messages", 0.8),
    )


def test_a_sure_move_holds_only_when_its_series_stays_on_the_side_it_moved_to() -> None:
    # a queue's evening burst does not come: 49 messages where 1,541 are usual (a sure dip), then a minute
    # later 49 again, now a little above the quiet level's usual 45: a point and a rebound, not a level
    rows = _alarms((0, "sqs:q", "sent", 1.0), (1, "sqs:q", "sent", 0.52)).assign(delta=[-1492.0, 3.5])
    assert not group_alarms(rows, EDGES)[0].confirmed
    assert group_alarms(rows.drop(columns=["delta"]), EDGES)[0].confirmed  # without observed vs usual: as before
    # a feed that goes quiet and stays quiet holds; so does a surge that stays up
    assert group_alarms(rows.assign(delta=[-1492.0, -1400.0]), EDGES)[0].confirmed
    assert group_alarms(rows.assign(delta=[800.0, 650.0]), EDGES)[0].confirmed
    # a rebound does not hide a later alarm on the moved side; an alarm with no usual to compare counts
    three = _alarms((0, "sqs:q", "sent", 1.0), (1, "sqs:q", "sent", 0.52), (4, "sqs:q", "sent", 0.7))
    assert group_alarms(three.assign(delta=[-1492.0, 3.5, -900.0]), EDGES)[0].confirmed
    assert group_alarms(rows.assign(delta=[-1492.0, np.nan]), EDGES)[0].confirmed


def _with_repeats(alarms: list[tuple[int, str, str, float]], repeats: list[tuple[int, str, str]]) -> pd.DataFrame:
    """Alarm rows, and the detector's damped repeats (is_alarm false, a score below the alarm level)."""
    rows = _alarms(*alarms).assign(is_alarm=True)
    more = _alarms(*[(m, e, metric, 0.02) for m, e, metric in repeats]).assign(is_alarm=False)
    return pd.concat([rows, more], ignore_index=True)


def test_damped_repeats_make_a_lone_extreme_move_hold_only_when_read_and_unbroken() -> None:
    # a surge on one feed: sure at once, then the quiet period damps its repeats for six minutes
    surge = _with_repeats([(0, "feed:x", "messages", 0.999)], [(m, "feed:x", "messages") for m in range(1, 7)])

    def confirmed(rows: pd.DataFrame, run: int) -> list[bool]:
        return [e.confirmed for e in group_alarms(rows, EDGES, repeat_run=run)]

    assert confirmed(surge, 0) == [False]  # the default reads no repeat: the rule as before
    assert confirmed(surge, 6) == [True]
    assert confirmed(surge, 7) == [False]  # it held six minutes, not seven
    (e,) = group_alarms(surge, EDGES, repeat_run=6)
    assert e.alarms == 1 and e.end == e.start and e.series == ("feed:x|messages",)  # repeats join nothing
    # a blip: a second bad record some minutes after the first, nothing in between
    blip = _with_repeats([(0, "feed:x", "invalid_values", 1.0)], [(4, "feed:x", "invalid_values")])
    assert confirmed(blip, 1) == [False]
    # a run broken for one minute, or repeats of another series of the entity, do not hold it
    broken = [(m, "feed:x", "messages") for m in (1, 2, 4, 5, 6, 7)]
    assert confirmed(_with_repeats([(0, "feed:x", "messages", 0.999)], broken), 6) == [False]
    other = [(m, "feed:x", "latency_ms") for m in range(1, 7)]
    assert confirmed(_with_repeats([(0, "feed:x", "messages", 0.999)], other), 6) == [False]
    # a later alarm of the series fills its minute of the run (persist=3: two alarms alone do not hold it)
    def run_of(repeat_minutes: list[int]) -> bool:
        rows = _with_repeats(
            [(0, "feed:x", "messages", 0.999), (3, "feed:x", "messages", 0.7)],
            [(m, "feed:x", "messages") for m in repeat_minutes],
        )
        (e,) = group_alarms(rows, EDGES, persist=3, repeat_run=3)
        return e.confirmed

    assert run_of([1, 2]) and not run_of([-2, -1, 1])  # repeats before the sure alarm do not count
    # repeats on a resource that scheduled work explains corroborate nothing, like its alarms
    db = _with_repeats([(0, "rds:db", "CPU", 0.999)], [(m, "rds:db", "CPU") for m in range(1, 4)])
    assert label_alarms(db, EDGES, repeat_run=3)["confirmed"].all()
    explained = db.assign(explained=[False, True, True, True])
    assert not label_alarms(explained, EDGES, repeat_run=3)["confirmed"].any()
    assert len(label_alarms(db, EDGES, repeat_run=3)) == 1  # only the alarm is labelled


def test_an_alarm_that_scheduled_work_explains_does_not_make_an_extreme_move_hold() -> None:
    rows = _alarms((0, "rds:db", "CPU", 0.999), (5, "rds:db", "CPU", 0.9))
    held = label_alarms(rows, EDGES)
    assert held["confirmed"].all()
    explained = label_alarms(rows.assign(explained=[False, True]), EDGES)
    assert not explained["confirmed"].any()


def test_trends_stay_in_their_episode_but_corroborate_nothing() -> None:
    # a quiet afternoon: the trend test, on hourly medians, speaks for the db and a stage on it at 14:00
    trends = _alarms((0, "rds:db", "FreeableMemory", 0.75), (0, "stage:a.calc", "duration_s", 0.7)).assign(
        kind=["drift", "drift"]
    )
    (e,) = group_alarms(trends, EDGES)
    assert e.entities == ("rds:db", "stage:a.calc") and not e.confirmed
    assert group_alarms(trends.drop(columns=["kind"]), EDGES)[0].confirmed  # the rule before it
    # one trend and a step on the other entity: one entity corroborates, not two
    mixed = trends.assign(kind=["drift", "slow"])
    assert not group_alarms(mixed, EDGES)[0].confirmed
    # steps on both: confirmed, and a trend alongside them changes nothing
    steps = pd.concat([trends.assign(kind=["level_shift", "slow"]), _alarms((3, "rds:db", "CPU", 0.6)).assign(kind="drift")])
    assert group_alarms(steps, EDGES)[0].confirmed
    # a trend is no second alarm of a sure move either
    sure = _alarms((0, "feed:x", "messages", 0.995), (5, "feed:x", "messages", 0.8))
    assert group_alarms(sure.assign(kind=["spike", "level_shift"]), EDGES)[0].confirmed
    assert not group_alarms(sure.assign(kind=["spike", "drift"]), EDGES)[0].confirmed


def _first_seen(**hours_before: float) -> pd.DataFrame:
    """Each entity's first minute in the marts, ``hours`` before T0 (keys: entity ids with ``_`` for ``:``)."""
    return pd.DataFrame(
        [{"entity_id": k.replace("_", ":", 1), "first_ts": T0 - pd.Timedelta(hours=h)} for k, h in hours_before.items()]
    )


def test_a_sure_score_counts_only_once_the_detector_has_watched_its_entity_for_a_day() -> None:
    # the first market open the detector ever sees: messages surge at 07:00 and stay up at 07:05
    surge = _alarms((0, "feed:x", "messages", 1.0), (5, "feed:x", "messages", 0.98))
    seen = _first_seen(feed_x=7, feed_y=30)  # feed:x since midnight, feed:y for 30 hours
    assert learning(surge, seen).tolist() == [True, True]
    assert not label_alarms(surge.assign(learning=learning(surge, seen)), EDGES)["confirmed"].any()
    # the same move a day later holds and confirms, as it does without the column
    day_on = _first_seen(feed_x=31)
    assert not learning(surge, day_on).any()
    assert label_alarms(surge.assign(learning=learning(surge, day_on)), EDGES)["confirmed"].all()
    assert label_alarms(surge, EDGES)["confirmed"].all()
    # exactly a day is watched long enough; a second later is not
    assert not learning(surge.head(1), _first_seen(feed_x=24)).any()
    assert learning(surge.head(1), _first_seen(feed_x=24 - 1 / 3600)).all()
    # a learning entity still confirms from two entities: the feed and the stage that reads it
    wide = _alarms((0, "feed:x", "messages", 1.0), (4, "stage:a.ingest", "duration_s", 0.7))
    marks = learning(wide, seen)
    assert marks.tolist() == [True, False]  # a stage's runs are judged against its own runs: no first minute
    assert label_alarms(wide.assign(learning=marks), EDGES)["confirmed"].all()
    # an entity with no first minute at all (a run source, or no marts) never learns
    assert not learning(surge, None).any() and not learning(surge, _first_seen(feed_y=2)).any()
    # per entity: at the same open, the feed watched for 30 hours confirms and the new one does not
    two = _alarms(
        (0, "feed:x", "messages", 1.0), (0, "feed:y", "messages", 1.0),
        (5, "feed:x", "messages", 0.98), (5, "feed:y", "messages", 0.98),
    )
    eps = group_alarms(two.assign(learning=learning(two, seen)), EDGES)
    assert [(e.entities, e.confirmed) for e in eps] == [(("feed:x",), False), (("feed:y",), True)]
    # a feed past its SLA is judged by rule, not against a learned day: it confirms in the feed's first hours
    breach = _alarms((0, "feed:x", "stale", 1.0), (1, "feed:x", "stale", 1.0)).assign(kind="stale")
    assert not learning(breach, seen).any()
    assert label_alarms(breach.assign(learning=learning(breach, seen)), EDGES)["confirmed"].all()
    assert learning(breach.assign(kind="spike"), seen).all()


def test_related_alarms_further_apart_than_the_gap_are_separate() -> None:
    eps = group_alarms(_alarms((0, "rds:db", "CPU", 0.6), (31, "stage:b.load", "duration_s", 0.6)), EDGES)
    assert len(eps) == 2 and not any(e.confirmed for e in eps)
    wider = group_alarms(
        _alarms((0, "rds:db", "CPU", 0.6), (31, "stage:b.load", "duration_s", 0.6)),
        EDGES,
        gap=pd.Timedelta(minutes=45),
    )
    assert len(wider) == 1 and wider[0].confirmed


def test_siblings_join_through_the_resource_they_share() -> None:
    rows = _alarms((0, "stage:a.calc", "duration_s", 0.6), (3, "stage:b.load", "duration_s", 0.6))
    assert len(group_alarms(rows, EDGES)) == 2
    rows = _alarms(
        (0, "stage:a.calc", "duration_s", 0.6),
        (2, "rds:db", "CPU", 0.6),
        (3, "stage:b.load", "duration_s", 0.6),
    )
    (e,) = group_alarms(rows, EDGES)
    assert set(e.entities) == {"stage:a.calc", "rds:db", "stage:b.load"}


def test_siblings_joined_only_through_a_resource_that_corroborates_nothing_are_one_witness() -> None:
    # two stages of different jobs slow while the db they share alarms: three related witnesses
    rows = _alarms(
        (0, "stage:a.calc", "duration_s", 0.6),
        (2, "rds:db", "CPU", 0.6),
        (3, "stage:b.load", "duration_s", 0.6),
    )
    assert group_alarms(rows, EDGES)[0].confirmed
    # the db's alarm is the batch at work (explained) or a trend: the stages are linked only through it,
    # neither depends on the other, so the episode is not corroborated
    for silent in (rows.assign(explained=[False, True, False]), rows.assign(kind=["slow", "drift", "slow"])):
        (e,) = group_alarms(silent, EDGES)
        assert set(e.entities) == {"stage:a.calc", "rds:db", "stage:b.load"} and not e.confirmed
    # a stage and the job that runs it depend on one another: they corroborate with the db silent
    more = pd.concat([rows, _alarms((10, "job:a", "duration_s", 0.7))], ignore_index=True)
    assert group_alarms(more.assign(explained=[False, True, False, False]), EDGES)[0].confirmed
    # in time too: the db at minute 0 and its stage 45 minutes later, joined only through the db's alarms
    # under the batch in between, are not two witnesses; 25 minutes apart they are
    def chained(last: int) -> bool:
        rows = _alarms(
            (0, "rds:db", "CPU", 0.6), (20, "rds:db", "IOPS", 0.6), (last, "stage:a.calc", "duration_s", 0.6)
        ).assign(explained=[False, True, False])
        (e,) = group_alarms(rows, EDGES)
        return e.confirmed

    assert chained(25) and not chained(45)
    # with min_entities=3: two related witnesses and an unrelated one linked through the silent db are not three
    assert not group_alarms(more.assign(explained=[False, True, False, False]), EDGES, min_entities=3)[0].confirmed
    assert group_alarms(more, EDGES, min_entities=3)[0].confirmed


def test_each_alarm_is_labelled_with_its_episode_in_time_order() -> None:
    rows = _alarms((50, "feed:y", "up", 0.995), (0, "feed:x", "up", 0.6), (10, "job:a", "duration_s", 0.6))
    labelled = label_alarms(rows, EDGES)
    assert labelled["ts"].is_monotonic_increasing
    assert labelled["episode"].tolist() == [0, 0, 1] and labelled["confirmed"].tolist() == [True, True, False]
    assert label_alarms(rows, EDGES, persist=1)["confirmed"].tolist() == [True, True, True]
    assert label_alarms(rows.iloc[0:0], EDGES).empty


def test_input_order_does_not_matter_and_bad_input_is_refused() -> None:
    rows = _alarms((10, "job:a", "duration_s", 0.6), (0, "feed:x", "up", 0.6))
    assert group_alarms(rows, EDGES) == group_alarms(rows.iloc[::-1], EDGES)
    assert group_alarms(rows.iloc[0:0], EDGES) == []
    with pytest.raises(ValueError, match="missing: score"):
        group_alarms(rows.drop(columns=["score"]), EDGES)


# --- cms detect alarms ----------------------------------------------------------------------------------------


def _cli(argv: list[str]) -> tuple[int, str, str]:
    import argparse
    import io

    from cms_dagster.detect.cli import register

    p = argparse.ArgumentParser(prog="cms")
    register(p.add_subparsers(dest="command"))
    args = p.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    return args.func(args, stdout=out, stderr=err), out.getvalue(), err.getvalue()


@pytest.fixture()
def warehouse(tmp_path, monkeypatch) -> str:

    path = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("CMS_HOME", str(tmp_path))
    monkeypatch.setenv("CMS_WAREHOUSE", "duckdb")
    monkeypatch.setenv("CMS_DUCKDB_PATH", str(path))
    return str(path)


def _store(path: str, rows: pd.DataFrame) -> None:
    import duckdb

    con = duckdb.connect(path)
    con.execute("create schema if not exists intelligence")
    frame = rows.assign(
        ts=rows["ts"].dt.tz_localize(None),
        metric=rows["series"].str.split("|").str[1],
        is_alarm=True,
        source="feed",
        kind="spike",
        observed=1.0,
        baseline=0.0,
    )
    con.register("df", frame)
    con.execute("create table intelligence.anomalies as select * from df")
    con.close()


def test_cms_detect_alarms_lists_episodes_of_the_estate(warehouse: str) -> None:
    # entities of the packaged estate: a feed and a job that needs it
    from cms_dagster.domain import load_ontology

    ont = load_ontology()
    job = next(j for j in ont.jobs.values() if j.feeds)
    feed = f"feed:{job.feeds[0]}"
    _store(
        warehouse,
        _alarms(
            (0, feed, "messages", 0.6),
            (9, job.entity_id, "duration_s", 0.7),
            (200, "rds:nowhere", "CPU", 0.6),
        ),
    )
    window = ["--since", "2026-11-20T09:00:00Z", "--until", "2026-11-20T16:00:00Z"]
    code, out, err = _cli(["detect", "alarms", *window])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("1 confirmed episode(s) and 1 lone alarm group(s)") and "--all" in lines[0]
    assert lines[2].startswith("2026-11-20T10:00Z") and "confirmed" in lines[2] and feed in lines[2]
    assert lines[-1] == "why: cms rca incident --at 2026-11-20T10:00:00Z"
    code, out, _ = _cli(["detect", "alarms", *window, "--all", "--json"])
    import json

    doc = json.loads(out)
    assert code == 0 and [e["confirmed"] for e in doc["episodes"]] == [True, False]
    assert doc["episodes"][0]["entities"] == [feed, job.entity_id]


def test_cms_detect_alarms_explains_what_is_missing(warehouse: str) -> None:
    code, _, err = _cli(["detect", "alarms"])
    assert code == 2 and "materialize the intelligence/anomalies asset" in err
    code, _, err = _cli(["detect", "alarms", "--since", "last tuesday"])
    assert code == 2 and "neither a duration" in err


def _daily(days: list[int], minute: int, entities: list[str]) -> list:
    """One confirmed two-entity episode per given day (0 = T0's day) at T0 + ``minute``."""
    rows = []
    for d in days:
        m = d * 24 * 60 + minute
        rows += [(m, entities[0], "duration_s", 0.8), (m + 3, entities[1], "duration_s", 0.8)]
    return group_alarms(_alarms(*rows), EDGES)


def test_an_episode_at_the_same_time_of_day_on_earlier_days_is_the_schedule() -> None:
    # the db and the stage using it alarm every evening about 20:40 (a batch window), give or take minutes
    episodes = _daily([0, 1, 2, 3], 640, ["rds:db", "stage:a.calc"])
    episodes += _daily([3], 655, ["stage:a.calc", "rds:db"])  # a quarter of an hour later, same entities
    episodes.sort(key=lambda e: e.start)
    assert all(e.confirmed for e in episodes)
    last = episodes[-1]
    assert recurs_daily(last, episodes)  # 15 min from the same clock time on days 2, 1 and 0


def test_an_incident_at_a_new_time_or_on_other_entities_is_news() -> None:
    schedule = _daily([0, 1, 2], 640, ["rds:db", "stage:a.calc"])
    new_time = _daily([3], 900, ["rds:db", "stage:a.calc"])  # the same entities at 15:00: never before
    other = _daily([3], 640, ["feed:y", "job:c"])  # at the usual time, but on entities that never alarmed then
    once_before = _daily([2, 3], 300, ["feed:x", "stage:a.ingest"])  # only one earlier day: not yet a schedule
    everything = sorted(schedule + new_time + other + once_before, key=lambda e: e.start)
    assert not recurs_daily(new_time[0], everything)
    assert not recurs_daily(other[0], everything)
    assert not recurs_daily(once_before[-1], everything)


def test_a_market_that_opens_every_sunday_evening_is_the_weekly_schedule_and_a_new_time_is_not() -> None:
    # a feed and the job reading it alarm on Sunday evening only (the market opens); T0 is a Friday
    sundays = _daily([2, 9, 16], 660, ["feed:x", "stage:a.ingest"])
    monday = _daily([17], 660, ["feed:x", "stage:a.ingest"])  # the same time on a Monday: never before
    everything = sorted(sundays + monday, key=lambda e: e.start)
    assert not recurs_daily(sundays[1], everything)  # nothing on the days just before it
    weekly = {"every_entity": False, "confirmed_only": False, "days": 0}  # the weeks alone, loosely
    assert recurs(sundays[2], everything, **weekly) and is_schedule(sundays[2], everything)
    assert not recurs(sundays[0], everything, **weekly) and not is_schedule(sundays[0], everything)
    assert not is_schedule(monday[0], everything)
    assert explained_by_schedule(sundays[2], everything) and not explained_by_schedule(monday[0], everything)
    # one week before alone is a coincidence as often as a rhythm: both weeks are needed, unless asked
    assert not recurs(sundays[1], everything, **weekly) and not explained_by_schedule(sundays[1], everything)
    assert recurs(sundays[1], everything, **weekly, min_weeks=1)


def test_one_recurrence_check_read_loosely_or_strictly() -> None:
    # the db alarms with its stage every evening at 20:40; tonight a second stage alarms with them
    nights = _daily([0, 1, 2], 640, ["rds:db", "stage:a.calc"])
    tonight = group_alarms(_alarms((3 * 1440 + 640, "rds:db", "cpu", 0.8), (3 * 1440 + 642, "stage:b.load", "duration_s", 0.8)), EDGES)
    everything = sorted(nights + tonight, key=lambda e: e.start)
    (t,) = tonight
    # loosely (one entity that recurs is enough) it is the schedule; strictly the second stage is news
    assert is_schedule(t, everything) and recurs(t, everything, every_entity=False)
    assert not explained_by_schedule(t, everything) and not recurs(t, everything)
    # lone alarms at that time on earlier days count loosely, not strictly
    lone = group_alarms(_alarms(*[(d * 1440 + 640, "rds:db", "cpu", 0.5) for d in (0, 1, 2)]), EDGES)
    alone = group_alarms(_alarms((3 * 1440 + 641, "rds:db", "cpu", 0.995), (3 * 1440 + 643, "rds:db", "cpu", 0.7)), EDGES)
    assert not any(e.confirmed for e in lone) and alone[0].confirmed
    everything = sorted(lone + alone, key=lambda e: e.start)
    assert recurs(alone[0], everything, confirmed_only=False) and not recurs(alone[0], everything)
    # days alone: 2 of the 3 days before, not 1; min_days is a parameter
    two = _daily([1, 2, 3], 640, ["rds:db", "stage:a.calc"])
    assert recurs(two[-1], two, weeks=0) and not recurs(two[-1], two[1:], weeks=0)
    assert recurs(two[-1], two[1:], weeks=0, min_days=1)


def test_cms_detect_alarms_marks_the_episodes_that_recur_daily(warehouse: str) -> None:
    from cms_dagster.domain import load_ontology

    ont = load_ontology()
    job = next(j for j in ont.jobs.values() if j.feeds)
    feed = f"feed:{job.feeds[0]}"
    day = 24 * 60
    rows = []
    for d in range(4):  # the feed and its job alarm together every day at 10:00 ...
        rows += [(d * day, feed, "messages", 0.6), (d * day + 5, job.entity_id, "duration_s", 0.7)]
    rows += [(3 * day + 300, feed, "messages", 0.6), (3 * day + 306, job.entity_id, "duration_s", 0.7)]  # and 15:00
    _store(warehouse, _alarms(*rows))
    window = ["--since", "2026-11-23T00:00:00Z", "--until", "2026-11-24T00:00:00Z"]
    code, out, err = _cli(["detect", "alarms", *window])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("2 confirmed episode(s)")
    assert lines[1].startswith("1 of the confirmed ones are the schedule: each of their entities")
    assert "schedule" in next(x for x in lines if x.startswith("2026-11-23T10:00Z"))
    assert "confirmed" in next(x for x in lines if x.startswith("2026-11-23T15:00Z"))
    assert lines[-1] == "why: cms rca incident --at 2026-11-23T15:00:00Z"
    code, out, _ = _cli(["detect", "alarms", *window, "--json"])
    import json

    assert [e["recurs_daily"] for e in json.loads(out)["episodes"]] == [True, False]
    assert [e["schedule"] for e in json.loads(out)["episodes"]] == [True, False]


def test_cms_detect_alarms_marks_as_schedule_only_what_opens_no_incident(warehouse: str) -> None:
    import json

    from cms_dagster.domain import load_ontology
    from cms_dagster.incidents.grouping import explained_between, incidents_between
    from cms_dagster.settings import load
    from cms_dagster.warehouse.client import from_settings

    ont = load_ontology()
    job = next(j for j in ont.jobs.values() if j.feeds)
    feed = f"feed:{job.feeds[0]}"
    day = 24 * 60
    # the feed alone is noisy at 10:00 every day (lone alarms); on the fourth day it alarms with its job
    rows = [(d * day, feed, "messages", 0.6) for d in range(3)]
    rows += [(3 * day, feed, "messages", 0.6), (3 * day + 5, job.entity_id, "duration_s", 0.7)]
    _store(warehouse, _alarms(*rows))
    window = ["--since", "2026-11-23T00:00:00Z", "--until", "2026-11-24T00:00:00Z"]
    code, out, err = _cli(["detect", "alarms", *window, "--json"])
    assert code == 0, err
    (episode,) = json.loads(out)["episodes"]
    # the loose reading (anything on one of its entities at that time before) says it recurs; the rule the
    # incidents use does not (the earlier alarms were never corroborated), and it gets a report
    assert episode["recurs_daily"] is True and episode["schedule"] is False
    wh = from_settings(load())
    since, until = pd.Timestamp("2026-11-23T00:00:00Z").to_pydatetime(), pd.Timestamp("2026-11-24T00:00:00Z").to_pydatetime()
    assert explained_between(wh.query, since, until, ont) == []
    (incident,) = incidents_between(wh.query, since, until, ont)
    assert incident.start == pd.Timestamp(episode["start"])


def _runs(*rows: tuple[str, int, int]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"entity_id": e, "started_ts": T0 + pd.Timedelta(minutes=a), "finished_ts": T0 + pd.Timedelta(minutes=b)}
            for e, a, b in rows
        ]
    )


def test_a_busy_database_under_a_stage_that_ran_as_usual_corroborates_nothing() -> None:
    # the db alarms while stage a.calc (which uses it) runs from minute 0 to 20; a.calc raised no alarm
    alarms = _alarms((5, "rds:db", "CPU", 0.995), (12, "rds:db", "connections", 0.7), (14, "job:a", "duration_s", 0.6))
    runs = _runs(("stage:a.calc", 0, 20))
    explained = explained_by_work(alarms, runs, EDGES)
    assert explained.tolist() == [True, True, False]  # the job is no resource: never explained this way
    (e,) = group_alarms(alarms.assign(explained=explained), EDGES)
    assert e.alarms == 3 and not e.confirmed  # one unexplained entity, no unexplained score of 0.99
    assert group_alarms(alarms, EDGES)[0].confirmed  # without the runs it would have been


def test_a_busy_database_under_a_slow_stage_or_with_no_stage_running_is_news() -> None:
    alarms = _alarms((5, "rds:db", "CPU", 0.995), (18, "stage:a.calc", "duration_s", 0.8))
    runs = _runs(("stage:a.calc", 0, 15))  # the stage alarmed within its run (slow): not the usual work
    assert not explained_by_work(alarms, runs, EDGES).any()
    quiet = _alarms((45, "rds:db", "CPU", 0.995))
    assert not explained_by_work(quiet, runs, EDGES).any()  # nothing ran on the db at minute 45
    assert explained_by_work(quiet, _runs(("stage:b.load", 40, 50)), EDGES).all()  # another job's stage did


def _ranges(hi: float, lo: float, days: int = 7) -> pd.DataFrame:
    """The db's connections on each of the ``days`` days before T0's day stayed within [lo, hi]."""
    return pd.DataFrame(
        [
            {"entity_id": "rds:db", "metric": "connections", "day": (T0 - pd.Timedelta(days=d)).date(), "hi": hi, "lo": lo}
            for d in range(1, days + 1)
        ]
    )


def test_scheduled_work_does_not_explain_a_sure_move_beyond_what_the_resource_did_all_week() -> None:
    # connections pinned at 799 while a stage that uses the db runs as usual; all week they stayed 20-110
    alarms = _alarms((5, "rds:db", "connections", 0.995), (6, "rds:db", "connections", 0.7)).assign(
        metric="connections", observed=[799.0, 799.0]
    )
    runs = _runs(("stage:a.calc", 0, 20))
    assert explained_by_work(alarms, runs, EDGES).tolist() == [True, True]  # without the week's range
    week = _ranges(hi=110.0, lo=20.0)
    # the sure alarm is beyond the week: the work does not explain it; the weaker one stays explained
    assert explained_by_work(alarms, runs, EDGES, ranges=week).tolist() == [False, True]
    # a busy batch that reached 900 connections earlier in the week explains 799
    assert explained_by_work(alarms, runs, EDGES, ranges=_ranges(hi=900.0, lo=20.0)).tolist() == [True, True]
    # below the week's lowest value is beyond it too
    low = alarms.assign(observed=[5.0, 5.0])
    assert explained_by_work(low, runs, EDGES, ranges=week).tolist() == [False, True]
    # the alarm's own day does not count: only the days before it
    today = pd.DataFrame([{"entity_id": "rds:db", "metric": "connections", "day": T0.date(), "hi": 900.0, "lo": 0.0}])
    assert explained_by_work(alarms, runs, EDGES, ranges=pd.concat([week, today])).tolist() == [False, True]
    # no days before it (a new resource): nothing to bound the work by
    assert explained_by_work(alarms, runs, EDGES, ranges=today).tolist() == [True, True]


def test_a_pool_exhaustion_under_a_usual_stage_run_is_news_in_the_warehouse(warehouse: str) -> None:
    import duckdb

    from cms_dagster.domain import load_ontology
    from cms_dagster.settings import load
    from cms_dagster.warehouse.client import from_settings

    ont = load_ontology()
    edges = ont.dependency_edges()
    db, stages = next((r, sorted(s)) for r, s in sorted(workers(edges).items()) if r.startswith("rds:"))
    t0 = pd.Timestamp("2026-11-19 12:00")
    # a stage that works on the database runs from 11:50 to 12:20 and raises no alarm of its own; the
    # database's connections jump to 799 at noon and are still there at 12:05 (two sure alarms)
    alarms = pd.DataFrame(
        {
            "ts": [t0, t0 + pd.Timedelta("5min")],
            "series": f"{db}|DatabaseConnections",
            "entity_id": db,
            "metric": "DatabaseConnections",
            "score": [0.995, 0.996],
            "kind": ["spike", "level_shift"],
            "is_alarm": True,
            "source": "infra",
            "observed": 799.0,
            "baseline": 87.0,
        }
    )
    runs = pd.DataFrame(
        {"stage_key": [stages[0].removeprefix("stage:")], "started_ts": [t0 - pd.Timedelta("10min")],
         "finished_ts": [t0 + pd.Timedelta("20min")]}
    )

    def write(peak: float, hour: int = 21, first_day_only: bool = False) -> None:
        # the 7 days before: 80-100 connections, and the batch's ``peak`` at ``hour`` every day (or only on
        # the first of them)
        minutes = pd.date_range(t0.normalize() - pd.Timedelta(days=7), t0, freq="min", inclusive="left")
        values = np.array(90.0 + 10.0 * ((minutes.minute % 2) * 2 - 1), dtype=float)
        day = minutes.normalize() == t0.normalize() - pd.Timedelta(days=7) if first_day_only else True
        values[np.asarray((minutes.hour == hour) & day)] = peak
        infra = pd.DataFrame({"entity_id": db, "metric": "DatabaseConnections", "minute_ts": minutes, "avg_value": values})
        con = duckdb.connect(warehouse)
        con.execute("create schema if not exists intelligence; create schema if not exists marts")
        for name, df in [("intelligence.anomalies", alarms), ("marts.fct_stage_runs", runs), ("marts.fct_infra_metrics", infra)]:
            con.register("df", df)
            con.execute(f"create or replace table {name} as select * from df")
            con.unregister("df")
        con.close()

    wh = from_settings(load())
    since, until = (t0 - pd.Timedelta("1h")).tz_localize("UTC"), (t0 + pd.Timedelta("1h")).tz_localize("UTC")
    write(peak=100.0)  # never near 799: the work does not explain it, the move holds, the episode is confirmed
    (episode,) = episodes_between(wh.query, since, until, edges)
    assert episode.entities == (db,) and episode.confirmed
    write(peak=900.0)  # the batch reaches 900 every evening: 799 under a usual run is the work
    (episode,) = episodes_between(wh.query, since, until, edges)
    assert not episode.confirmed
    # the batch reached 900 once, at 03:00 on the first of the 7 days before: a window starting at 11:00
    # counts that whole day as one starting at midnight does, so the alarm is judged the same in both
    write(peak=900.0, hour=3, first_day_only=True)
    for start in (since, t0.normalize().tz_localize("UTC")):
        (episode,) = episodes_between(wh.query, start, until, edges)
        assert not episode.confirmed


def test_workers_reach_a_cluster_through_its_namespace_but_not_feeds() -> None:
    edges = [*EDGES, ("stage:a.ingest", "eks:c/ns"), ("eks:c/ns", "eks:c")]
    work = workers(edges)
    assert work["eks:c"] == {"stage:a.ingest"} and work["rds:db"] == {"stage:a.calc", "stage:b.load"}
    assert "feed:x" not in work


def test_repeats_are_read_from_the_streaming_detectors_sources_only() -> None:
    from cms_dagster.detect.episodes import ALARMS_AND_REPEATS_SQL, STREAM_SOURCES
    from cms_dagster.detect.pipeline import SOURCES
    from cms_dagster.detect.runs import RUN_SOURCES

    # only the streaming detector damps repeats; a run verdict has a kind at any score
    assert set(STREAM_SOURCES) == set(SOURCES) and not set(STREAM_SOURCES) & set(RUN_SOURCES)
    assert all(f"'{x}'" in ALARMS_AND_REPEATS_SQL for x in STREAM_SOURCES)


def test_the_first_open_a_feed_ever_shows_is_not_sure_in_the_warehouse_whatever_the_window(warehouse: str) -> None:
    import duckdb

    from cms_dagster.settings import load
    from cms_dagster.warehouse.client import from_settings

    day0 = pd.Timestamp("2026-11-16")  # the marts begin at midnight
    minutes = pd.date_range(day0, day0 + pd.Timedelta(days=2), freq="min", inclusive="left")
    feeds = pd.DataFrame({"feed_id": "x", "minute_ts": minutes, "messages": 100})

    def surge(day: int) -> pd.DataFrame:
        at = day0 + pd.Timedelta(days=day, hours=7)
        return pd.DataFrame(
            {"ts": [at, at + pd.Timedelta("5min")], "series": "feed:x|messages", "entity_id": "feed:x",
             "metric": "messages", "score": [1.0, 0.98], "kind": ["spike", "level_shift"], "is_alarm": True,
             "source": "feed",
             "observed": 1000.0, "baseline": 100.0}
        )

    con = duckdb.connect(warehouse)
    con.execute("create schema if not exists intelligence; create schema if not exists marts")
    for name, df in [("intelligence.anomalies", pd.concat([surge(0), surge(1)])), ("marts.fct_feed_status", feeds)]:
        con.register("df", df)
        con.execute(f"create or replace table {name} as select * from df")
        con.unregister("df")
    con.close()
    wh = from_settings(load())

    def confirmed(since: pd.Timestamp, until: pd.Timestamp) -> list[bool]:
        return [e.confirmed for e in episodes_between(wh.query, since.tz_localize("UTC"), until.tz_localize("UTC"), EDGES)]

    # the first morning: seven hours of history, the open's surge confirms nothing, whatever the window
    for start in (day0, day0 + pd.Timedelta(hours=6)):
        assert confirmed(start, day0 + pd.Timedelta(hours=12)) == [False]
    # the second morning the same surge holds and confirms, read alone or with the first
    assert confirmed(day0 + pd.Timedelta(days=1, hours=6), day0 + pd.Timedelta(days=2)) == [True]
    assert confirmed(day0, day0 + pd.Timedelta(days=2)) == [False, True]
