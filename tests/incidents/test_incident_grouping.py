"""One problem, one incident: confirmed episodes grouped through the ontology and time, with stable ids."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from cms_dagster import settings as settings_mod
from cms_dagster.detect.episodes import Episode, explained_by_schedule
from cms_dagster.domain import load_ontology
from cms_dagster.incidents.grouping import (
    Relations,
    Runs,
    explained_between,
    group_episodes,
    incidents_between,
    window_between,
)
from cms_dagster.incidents.report import confirmed_incidents, episode_status, incident_id
from cms_dagster.warehouse.client import Warehouse

from .incident_fixtures import OUTAGE, outage_every_evening, write_alarms, write_marts

T0 = pd.Timestamp("2026-11-19 22:10", tz="UTC")


def _ep(
    minutes: float, *entities: str, length: float = 5, confirmed: bool = True, metric: str = "m", way: int = 0
) -> Episode:
    """An episode of ``metric`` on ``entities``; ``way`` 1 / -1: their series rose / fell."""
    start = T0 + pd.Timedelta(minutes=minutes)
    series = tuple(f"{e}|{metric}" for e in entities)
    return Episode(
        start=start,
        end=start + pd.Timedelta(minutes=length),
        alarms=3,
        entities=entities,
        series=series,
        peak_score=0.99,
        confirmed=confirmed,
        rising=series if way > 0 else (),
        falling=series if way < 0 else (),
    )


@pytest.fixture(scope="module")
def relations() -> Relations:
    return Relations(load_ontology().dependency_edges())


def test_a_database_and_the_queue_of_the_same_job_alarming_together_are_one_incident(relations):
    # siblings: neither depends on the other, one job uses both
    assert not relations.close(["rds:positions-db"], ["sqs:valuation-results"])
    assert relations.near(["rds:positions-db"], ["sqs:valuation-results"])
    db, queue = _ep(0, "rds:positions-db"), _ep(4, "sqs:valuation-results")
    (incident,) = group_episodes([queue, db], relations)
    assert incident.episodes == (db, queue)
    assert incident_id(incident.as_episode()) == incident_id(db)
    merged = incident.as_episode()
    assert merged.alarms == 6 and merged.entities == ("rds:positions-db", "sqs:valuation-results")
    assert merged.end == queue.end


def test_an_unrelated_episode_at_the_same_time_is_an_incident_of_its_own(relations):
    assert not relations.near(["feed:ebs-fx"], ["feed:cme-mdp"])
    incidents = group_episodes([_ep(0, "feed:cme-mdp"), _ep(2, "feed:ebs-fx")], relations)
    assert [i.entities for i in incidents] == [("feed:cme-mdp",), ("feed:ebs-fx",)]


def test_a_fault_that_alarms_again_within_two_hours_stays_one_incident_later_it_is_a_new_one(relations):
    # a memory leak: the pod nears its limit again 110 minutes after the last alarm, then not for 3 hours
    first, again, much_later = _ep(0, "feed:cme-mdp"), _ep(115, "feed:cme-mdp"), _ep(300, "feed:cme-mdp")
    incidents = group_episodes([first, again, much_later], relations)
    assert [i.episodes for i in incidents] == [(first, again), (much_later,)]


def test_a_series_the_incident_moved_coming_back_after_a_quiet_spell_is_the_same_incident(relations):
    # a memory leak: the pod's memory alarms rising, then nothing for 2.5 hours, then the restart drops it
    pod = "eks:markets-prod/reporting"
    climb = _ep(0, pod, metric="pod_memory_utilization", way=1)
    restart = _ep(150, pod, metric="pod_memory_utilization", way=-1)
    (incident,) = group_episodes([climb, restart], relations)
    assert incident.episodes == (climb, restart)
    # rising again after the quiet spell is not its coming back: a new incident, as before
    again = _ep(150, pod, metric="pod_memory_utilization", way=1)
    assert len(group_episodes([climb, again], relations)) == 2
    # another series of the pod falling is not the incident's move coming back either
    other = _ep(150, pod, metric="pod_cpu_utilization", way=-1)
    assert len(group_episodes([climb, other], relations)) == 2
    # and past six hours after the first alarm nothing joins any more
    late = _ep(400, pod, metric="pod_memory_utilization", way=-1)
    assert len(group_episodes([climb, late], relations)) == 2


def test_an_episode_that_could_join_two_incidents_joins_the_one_on_its_own_entity(relations):
    # a feed outage alarms, then alarms again 50 minutes later; meanwhile another feed's noise became an
    # incident that a job reading both feeds relates it to: the outage's second episode is the outage's
    refinitiv, bloomberg, cme = "feed:refinitiv-elektron", "feed:bloomberg-bpipe", "feed:cme-mdp"
    assert not relations.near([cme], [refinitiv]) and relations.near([bloomberg], [refinitiv])
    assert not relations.close([cme], [bloomberg]) and relations.near([cme], [bloomberg])
    noise, outage, more_noise, outage_again = _ep(0, refinitiv), _ep(1, cme), _ep(30, bloomberg, length=20), _ep(50, cme)
    incidents = group_episodes([noise, outage, more_noise, outage_again], relations)
    assert [i.episodes for i in incidents] == [(noise, more_noise), (outage, outage_again)]


def test_a_job_sibling_joins_only_while_the_incident_is_fresh(relations):
    db = _ep(0, "rds:positions-db")
    assert len(group_episodes([db, _ep(30, "sqs:valuation-results")], relations)) == 1
    assert len(group_episodes([db, _ep(60, "sqs:valuation-results")], relations)) == 2


def test_an_incident_does_not_grow_for_ever(relations):
    # a related episode every 90 minutes: each close to the last, but past 6 hours a new incident starts
    eps = [_ep(90 * k, "feed:cme-mdp") for k in range(6)]
    incidents = group_episodes(eps, relations)
    assert [len(i.episodes) for i in incidents] == [5, 1]
    assert incidents[1].start == T0 + pd.Timedelta(minutes=450)


def test_unconfirmed_episodes_open_no_incident(relations):
    assert group_episodes([_ep(0, "feed:cme-mdp", confirmed=False)], relations) == []


@pytest.fixture()
def estate(cms_home: Path, monkeypatch: pytest.MonkeyPatch) -> settings_mod.Settings:
    path = cms_home / "warehouse.duckdb"
    write_marts(path)
    monkeypatch.setenv("CMS_DUCKDB_PATH", str(path))
    return settings_mod.load()


def test_an_incident_read_from_a_window_that_starts_inside_it_keeps_its_id_and_all_its_episodes(estate):
    t0 = pd.Timestamp(OUTAGE).tz_localize(None)
    # the outage's episode at 20:00, and the feed stale again at 21:30 (two points): one incident, two episodes
    again = [(t0 + pd.Timedelta(f"{m}min"), "feed:cme-mdp", "staleness_s", 0.995) for m in (88, 90)]
    write_alarms(estate.duckdb_path, extra=again)
    wh = Warehouse(estate)
    ont = load_ontology()
    utc = dt.timezone.utc
    whole = incidents_between(wh.query, dt.datetime(2026, 11, 24, tzinfo=utc), dt.datetime(2026, 11, 27, tzinfo=utc), ont)
    # a sensor that only looks at the hour of the second episode
    late = confirmed_incidents(wh.query, dt.datetime(2026, 11, 25, 21, tzinfo=utc), dt.datetime(2026, 11, 25, 22, tzinfo=utc), ont)
    assert len(whole) == 1 and len(whole[0].episodes) == 2
    assert [incident_id(e) for e in late] == [incident_id(whole[0].as_episode())]
    assert incident_id(late[0]).startswith("inc-20261125-2000-")
    assert late[0].alarms == 4 and late[0].end == pd.Timestamp(t0 + pd.Timedelta("90min"), tz="UTC")


def test_a_feed_coming_back_after_its_outage_keeps_the_outage_s_id_in_every_window(estate):
    t0 = pd.Timestamp(OUTAGE).tz_localize(None)
    # the feed's up goes to 0 at 20:00 (the outage); at 22:30 it comes back, a sure move that holds
    back = [(t0 + pd.Timedelta(f"{m}min"), "feed:cme-mdp", "up", 0.995, 1.0) for m in (150, 151)]
    write_alarms(estate.duckdb_path, extra=back)
    wh = Warehouse(estate)
    ont = load_ontology()
    utc = dt.timezone.utc
    whole = incidents_between(wh.query, dt.datetime(2026, 11, 24, tzinfo=utc), dt.datetime(2026, 11, 27, tzinfo=utc), ont)
    outage = [i for i in whole if i.start == pd.Timestamp(t0, tz="UTC")]
    assert len(outage) == 1 and len(outage[0].episodes) == 2
    assert not any(i.start == pd.Timestamp(t0 + pd.Timedelta("150min"), tz="UTC") for i in whole)
    # a sensor reading only the hour of the coming back finds the outage's incident, with its id
    late = confirmed_incidents(wh.query, dt.datetime(2026, 11, 25, 22, tzinfo=utc), dt.datetime(2026, 11, 25, 23, tzinfo=utc), ont)
    assert [incident_id(e) for e in late] == [incident_id(outage[0].as_episode())]


def test_an_incident_stays_open_while_an_episode_may_still_join(estate):
    write_alarms(estate.duckdb_path)
    wh = Warehouse(estate)
    utc = dt.timezone.utc
    (incident,) = confirmed_incidents(
        wh.query, dt.datetime(2026, 11, 25, 19, tzinfo=utc), dt.datetime(2026, 11, 25, 21, tzinfo=utc), load_ontology()
    )
    assert episode_status(incident, incident.end + pd.Timedelta(minutes=90)) == "open"
    assert episode_status(incident, incident.end + pd.Timedelta(minutes=121)) == "closed"


def _at(t: pd.Timestamp, *entities: str, confirmed: bool = True) -> Episode:
    return Episode(
        start=t, end=t + pd.Timedelta(minutes=5), alarms=2, entities=entities,
        series=tuple(f"{e}|m" for e in entities), peak_score=0.99, confirmed=confirmed,
    )


def test_the_nightly_batch_that_alarmed_at_that_time_on_most_days_before_is_the_schedule():
    nights = [_at(T0 - pd.Timedelta(days=k, minutes=7 * k), "rds:positions-db") for k in (1, 2)]
    tonight = _at(T0, "rds:positions-db")
    assert explained_by_schedule(tonight, [*nights, tonight])
    # one earlier night is not a habit; nor is a night 30 minutes off the usual time
    assert not explained_by_schedule(tonight, [nights[0], tonight])
    assert not explained_by_schedule(tonight, [nights[0], _at(nights[1].start - pd.Timedelta(minutes=30), "rds:positions-db")])


def test_the_same_time_on_the_same_weekday_both_weeks_before_is_the_schedule():
    weeks = [_at(T0 - pd.Timedelta(days=7 * k, minutes=-10), "feed:cme-mdp") for k in (1, 2)]
    assert explained_by_schedule(_at(T0, "feed:cme-mdp"), weeks)
    assert not explained_by_schedule(_at(T0, "feed:cme-mdp"), [_at(T0 - pd.Timedelta(days=6), "feed:cme-mdp")])


def test_a_fault_at_the_time_of_an_earlier_fault_a_week_before_is_not_the_schedule():
    # the feed was delayed at 22:10 last Thursday (an incident) and again tonight: once is no rhythm
    last_week = _at(T0 - pd.Timedelta(days=7), "feed:cme-mdp")
    assert not explained_by_schedule(_at(T0, "feed:cme-mdp"), [last_week])


def test_lone_alarms_at_that_time_on_earlier_days_do_not_explain_a_corroborated_episode():
    # a feed that is noisy at its open every day: the noise never confirmed, so a confirmed episode is news
    noise = [_at(T0 - pd.Timedelta(days=k), "feed:cme-mdp", confirmed=False) for k in (1, 2, 3)]
    assert not explained_by_schedule(_at(T0, "feed:cme-mdp"), noise)


def test_a_fault_during_the_batch_moves_something_the_batch_does_not_and_is_news():
    nights = [_at(T0 - pd.Timedelta(days=k), "rds:positions-db") for k in (1, 2, 3)]
    fault = _at(T0, "rds:positions-db", "stage:equities.eod_pricing.ingest")
    assert not explained_by_schedule(fault, nights)
    assert explained_by_schedule(_at(T0, "rds:positions-db"), nights)


def test_the_schedule_opens_no_incident_and_a_fault_at_the_same_time_still_does(estate):
    # the feed and its job alarmed together at the outage's minute on the three days before: the schedule
    ont = load_ontology()
    job = next(j for j in ont.jobs.values() if "cme-mdp" in j.feeds)
    t0 = pd.Timestamp(OUTAGE).tz_localize(None)
    nights = outage_every_evening()
    write_alarms(estate.duckdb_path, extra=nights)
    wh = Warehouse(estate)
    utc = dt.timezone.utc
    window = (dt.datetime(2026, 11, 25, 19, tzinfo=utc), dt.datetime(2026, 11, 25, 22, tzinfo=utc))
    assert incidents_between(wh.query, *window, ont) == []
    (explained,) = explained_between(wh.query, *window, ont)
    assert explained.start == pd.Timestamp(OUTAGE).tz_convert("UTC")
    (kept,) = incidents_between(wh.query, *window, ont, schedule=False)
    assert kept.start == explained.start
    # the same evening with the job's ingest stage alarming too: not the schedule any more, one incident
    stage = next(d for s, d in ont.dependency_edges() if s == job.entity_id and d.startswith("stage:"))
    write_alarms(estate.duckdb_path, extra=[*nights, (t0 + pd.Timedelta("3min"), stage, "duration_s", 0.9)])
    (incident,) = incidents_between(wh.query, *window, ont)
    assert stage in incident.entities and incident.start == explained.start


def test_a_window_s_incidents_and_what_the_schedule_explains_come_from_one_read_of_the_alarms(estate):
    # the outage's minute is the schedule on the evening before too; a memory leak elsewhere the same evening
    ont = load_ontology()
    t0 = pd.Timestamp(OUTAGE).tz_localize(None)
    extra = [
        *outage_every_evening(),
        (t0 + pd.Timedelta("40min"), "eks:markets-prod/risk-engine", "memory_pct", 0.995),
        (t0 + pd.Timedelta("42min"), "eks:markets-prod/risk-engine", "memory_pct", 0.996),
    ]
    write_alarms(estate.duckdb_path, extra=extra)
    wh = Warehouse(estate)
    reads: list[str] = []

    def query(sql: str, params: list) -> pd.DataFrame:
        reads.append(sql)
        return wh.query(sql, params)

    utc = dt.timezone.utc
    window = (dt.datetime(2026, 11, 25, 19, tzinfo=utc), dt.datetime(2026, 11, 25, 22, tzinfo=utc))
    both = window_between(query, *window, ont)
    assert sum("intelligence.anomalies" in sql for sql in reads) == 1
    assert both.incidents == incidents_between(wh.query, *window, ont)
    assert both.explained == explained_between(wh.query, *window, ont)
    (explained,) = both.explained
    (incident,) = both.incidents
    assert explained.start == pd.Timestamp(OUTAGE).tz_convert("UTC")
    assert incident.entities == ("eks:markets-prod/risk-engine",)



def test_two_jobs_slowed_by_a_silent_database_an_hour_apart_are_one_incident(relations):
    # the database never alarms; the two jobs working on it run late 47 minutes apart
    bonds = ("stage:fixed_income.bond_valuation.valuation", "job:fixed_income.bond_valuation")
    fx = ("stage:fx.eod_revaluation.valuation", "job:fx.eod_revaluation")
    assert not relations.close(bonds, fx) and relations.sharing(bonds, fx)
    first, second = _ep(0, *bonds), _ep(47, *fx)
    (incident,) = group_episodes([first, second], relations)
    assert incident.episodes == (first, second)
    # beyond ``far`` after the last alarm it is news again
    assert len(group_episodes([first, _ep(5 + 121, *fx)], relations)) == 2


def test_a_job_sharing_no_resource_and_no_dependency_is_an_incident_of_its_own(relations):
    bonds = ("stage:fixed_income.bond_valuation.valuation", "job:fixed_income.bond_valuation")
    other = next(
        (f"feed:{f}",)
        for f in load_ontology().feeds
        if not relations.close([f"feed:{f}"], bonds) and not relations.sharing([f"feed:{f}"], bonds)
    )
    assert len(group_episodes([_ep(0, *bonds), _ep(40, *other)], relations)) == 2


def test_an_episode_joins_the_incident_it_depends_on_before_one_it_only_shares_a_resource_with(relations):
    bonds = ("stage:fixed_income.bond_valuation.valuation",)
    feed = ("feed:ebs-fx",)  # read by the fx job, nothing to do with the bond valuation
    fx = ("stage:fx.eod_revaluation.valuation",)  # on the bonds' database, and reads the feed
    assert not relations.close(feed, bonds) and not relations.sharing(feed, bonds)
    assert relations.sharing(fx, bonds) and relations.close(fx, feed)
    a, b, later = _ep(0, *bonds), _ep(10, *feed), _ep(40, *fx)
    incidents = group_episodes([a, b, later], relations)
    assert [i.episodes for i in incidents] == [(a,), (b, later)]


def test_a_run_that_began_during_an_incident_joins_it_though_its_verdict_comes_after_far(relations):
    # the feed's latency alarms for 23 minutes; the valuation run that reads it begins 51 minutes in and
    # finishes, slow, 157 minutes in: its verdict is 134 minutes after the feed's last alarm (far: 120)
    feed = _ep(0, "feed:markit-cds", length=23)
    slow = _ep(157, "job:derivatives.eod_valuation", "feed:cme-mdp", length=3)
    assert len(group_episodes([feed, slow], relations)) == 2  # from the first alarms alone
    run = {"entity_id": ["job:derivatives.eod_valuation"], "finished_ts": [T0 + pd.Timedelta(minutes=157)]}
    runs = Runs(pd.DataFrame({**run, "started_ts": [T0 + pd.Timedelta(minutes=51)]}))
    assert runs.began(slow) == T0 + pd.Timedelta(minutes=51)
    (incident,) = group_episodes([feed, slow], relations, began=runs.began)
    assert incident.episodes == (feed, slow) and incident_id(incident.as_episode()) == incident_id(feed)
    # a run that began after the feed had been quiet for longer than far is a problem of its own
    later = Runs(pd.DataFrame({**run, "started_ts": [T0 + pd.Timedelta(minutes=23 + 121)]}))
    assert len(group_episodes([feed, slow], relations, began=later.began)) == 2
    # a run of another job finishing during the episode says nothing about when this one began
    other = Runs(pd.DataFrame({**run, "entity_id": ["job:fx.eod_revaluation"], "started_ts": [T0]}))
    assert other.began(slow) == slow.start


def test_an_incident_stays_open_while_a_run_it_may_have_hit_is_still_running(estate):
    # the outage alarms from 20:00 to 20:06; the settlement-prices run that reads the feed began at 21:10 and
    # has not finished (write_marts): its verdict may still join, so the incident is not closed at 22:30
    write_alarms(estate.duckdb_path)
    wh = Warehouse(estate)
    ont = load_ontology()
    utc = dt.timezone.utc
    since = dt.datetime(2026, 11, 25, 19, tzinfo=utc)

    def read(until: dt.datetime) -> Episode:
        return next(i for i in confirmed_incidents(wh.query, since, until, ont) if i.start.hour == 20)

    held = read(dt.datetime(2026, 11, 25, 22, 30, tzinfo=utc))
    assert held.running == ("job:commodities.eod_settlement_prices",)
    assert episode_status(held, pd.Timestamp("2026-11-25 22:30", tz="UTC")) == "open"
    # six hours after its first alarm nothing can join any more, whatever is still running
    done = read(dt.datetime(2026, 11, 26, 2, 30, tzinfo=utc))
    assert done.running == () and episode_status(done, pd.Timestamp("2026-11-26 02:30", tz="UTC")) == "closed"
    assert incident_id(done) == incident_id(held)
