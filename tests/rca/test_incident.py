"""``analyse_incident`` and ``cms rca incident``: from a start time to ranked causes, on a warehouse file."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from marts_helpers import OUTAGE, outage_minutes, store_marts

from cms_dagster.domain import load_ontology
from cms_dagster.rca.cli import register
from cms_dagster.rca.incident import analyse_incident
from cms_dagster.rca.validate import RcaInputError

U = dt.timezone.utc


def _write_marts(path: Path) -> None:
    """Ten days of minutes for a database and a feed with a daily busy hour; the feed drops at OUTAGE."""
    con = duckdb.connect(str(path))
    con.execute("set TimeZone='UTC'")
    store_marts(con, *outage_minutes())
    con.close()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rca-incident") / "warehouse.duckdb"
    _write_marts(path)
    return path


def _query(path: Path):
    def query(sql: str, params: list) -> pd.DataFrame:
        con = duckdb.connect(str(path), read_only=True)
        try:
            con.execute("set TimeZone='UTC'")
            return con.execute(sql, params).df()
        finally:
            con.close()

    return query


def test_the_outage_is_named_with_its_kind_and_evidence(warehouse: Path) -> None:
    result = analyse_incident(_query(warehouse), OUTAGE, ontology=load_ontology())
    top = result.hypotheses[0]
    assert (top.entity, top.kind) == ("feed:cme-mdp", "feed_outage")
    assert {e.metric for e in top.evidence} >= {"up"}
    # the database's busy hour is its usual shape: after the seasonal adjustment it is not a suspect
    assert all(h.entity != "rds:orders-db" or h.score < 0.1 * top.score for h in result.hypotheses)
    doc = result.to_dict(top=2)
    assert doc["start"] == "2026-11-25T20:00:00Z" and len(doc["hypotheses"]) <= 2
    assert doc["series"] == result.series >= 8 and doc["points"] == len(result.evidence)


def test_without_the_seasonal_step_the_busy_hour_looks_like_a_fault(warehouse: Path) -> None:
    from cms_dagster.rca.evidence import EvidenceSettings

    start = dt.datetime(2026, 11, 25, 19, 0, tzinfo=U)  # the busy hour begins; nothing is wrong
    query = _query(warehouse)
    raw = analyse_incident(query, start, ontology=load_ontology(), settings=EvidenceSettings(seasonal=False))
    adjusted = analyse_incident(query, start, ontology=load_ontology())
    assert any(h.entity == "rds:orders-db" for h in raw.hypotheses)
    assert not any(h.entity == "rds:orders-db" for h in adjusted.hypotheses)


def test_a_start_outside_the_data_is_refused_with_what_to_do(warehouse: Path) -> None:
    with pytest.raises(RcaInputError, match="no series both before and after"):
        analyse_incident(_query(warehouse), dt.datetime(2027, 1, 1, tzinfo=U), ontology=load_ontology())


def test_max_connections_come_from_the_ontology() -> None:
    assert load_ontology().max_connections()["rds:orders-db"] > 0


def _cli(argv: list[str]) -> tuple[int, str, str]:
    p = argparse.ArgumentParser(prog="cms")
    register(p.add_subparsers(dest="command"))
    args = p.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    return args.func(args, stdout=out, stderr=err), out.getvalue(), err.getvalue()


@pytest.fixture()
def cms_env(warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMS_HOME", str(tmp_path))
    monkeypatch.setenv("CMS_WAREHOUSE", "duckdb")
    monkeypatch.setenv("CMS_DUCKDB_PATH", str(warehouse))


@pytest.mark.slow
def test_cms_rca_incident_prints_a_table_and_json(cms_env: None) -> None:
    code, out, err = _cli(["rca", "incident", "--at", "2026-11-25T20:00:00Z", "--top", "3"])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Root-cause hypotheses for the incident from 2026-11-25T20:00")
    assert "feed:cme-mdp" in lines[2] and "feed_outage" in lines[2]
    assert "series" in lines[-1] and "points of evidence" in lines[-1]
    code, out, _ = _cli(["rca", "incident", "--at", "2026-11-25T20:00:00Z", "--json", "--top", "1"])
    doc = json.loads(out)
    assert code == 0 and [(h["entity"], h["kind"]) for h in doc["hypotheses"]] == [
        ("feed:cme-mdp", "feed_outage")
    ]


def test_cms_rca_incident_says_what_to_do_on_bad_input(cms_env: None) -> None:
    code, _, err = _cli(["rca", "incident", "--at", "yesterday"])
    assert code == 2 and err.startswith("error:") and "--at" in err
    code, _, err = _cli(["rca", "incident", "--at", "2030-01-01T00:00:00Z"])
    assert code == 2 and "pick a start inside the loaded data" in err


@pytest.fixture()
def with_alarms(warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the warehouse whose detector alarmed on the outage (and once, alone, later on)."""
    import shutil

    path = tmp_path / "alarmed.duckdb"
    shutil.copy(warehouse, path)
    ont = load_ontology()
    job = next(j for j in ont.jobs.values() if "cme-mdp" in j.feeds)
    t0 = pd.Timestamp(OUTAGE).tz_localize(None)
    alarms = pd.DataFrame(
        {
            "ts": [t0, t0 + pd.Timedelta("6min"), t0 + pd.Timedelta("5h")],
            "series": ["feed:cme-mdp|up", f"{job.entity_id}|start_delay_s", "rds:orders-db|CPUUtilization"],
            "entity_id": ["feed:cme-mdp", job.entity_id, "rds:orders-db"],
            "metric": ["up", "start_delay_s", "CPUUtilization"],
            "score": [0.8, 0.7, 0.6],
            "kind": ["dip", "late", "spike"],
            "is_alarm": True,
            "observed": 1.0,
            "baseline": 0.0,
        }
    )
    con = duckdb.connect(str(path))
    con.execute("create schema intelligence")
    con.register("df", alarms)
    con.execute("create table intelligence.anomalies as select * from df")
    con.close()
    monkeypatch.setenv("CMS_HOME", str(tmp_path))
    monkeypatch.setenv("CMS_WAREHOUSE", "duckdb")
    monkeypatch.setenv("CMS_DUCKDB_PATH", str(path))
    return path


def test_cms_rca_incident_latest_analyses_the_last_confirmed_episode(with_alarms: Path) -> None:
    # the lone database alarm five hours later is not corroborated: the outage is the latest episode
    code, out, err = _cli(["rca", "incident", "--latest", "--json", "--top", "1"])
    assert code == 0, err
    assert "latest confirmed episode: 2 alarm(s) on feed:cme-mdp" in err
    doc = json.loads(out)
    assert doc["start"] == "2026-11-25T20:00:00Z"
    assert [(h["entity"], h["kind"]) for h in doc["hypotheses"]] == [("feed:cme-mdp", "feed_outage")]


def test_cms_rca_incident_latest_needs_the_detectors_alarms(cms_env: None) -> None:
    code, _, err = _cli(["rca", "incident", "--latest"])
    assert code == 2 and "materialize the intelligence/anomalies asset" in err


def test_cms_rca_incident_latest_says_when_nothing_alarmed(with_alarms: Path) -> None:
    con = duckdb.connect(str(with_alarms))
    con.execute("update intelligence.anomalies set is_alarm = false")
    con.close()
    code, _, err = _cli(["rca", "incident", "--latest"])
    assert code == 2 and "raised no alarm yet" in err


@pytest.mark.slow
def _add_alarms(warehouse: Path, rows: list[tuple]) -> None:
    """Alarms (ts, series, entity_id, metric) of score 0.8 added to the warehouse's anomalies."""
    alarms = pd.DataFrame(rows, columns=["ts", "series", "entity_id", "metric"]).assign(score=0.8, is_alarm=True)
    con = duckdb.connect(str(warehouse))
    con.register("alarms", alarms)
    con.execute("insert into intelligence.anomalies by name select * from alarms")
    con.close()


def test_cms_rca_incident_latest_skips_an_episode_that_recurs_daily(with_alarms: Path) -> None:
    # a stage and its database alarm together every day at the same time (a batch window): the latest of them
    # is the schedule, so --latest still analyses the outage before it
    edges = load_ontology().dependency_edges()
    stage, db = next((s, t) for s, t in edges if s.startswith("stage:") and t.startswith("rds:"))
    evening = pd.Timestamp(OUTAGE).tz_localize(None) + pd.Timedelta("7h")
    rows = []
    for k in range(4):
        at = evening - pd.Timedelta(days=k)
        rows += [(at, f"{db}|CPUUtilization", db, "CPUUtilization"), (at + pd.Timedelta("4min"), f"{stage}|duration_s", stage, "duration_s")]
    _add_alarms(with_alarms, rows)
    code, out, err = _cli(["rca", "incident", "--latest", "--json", "--top", "1"])
    assert code == 0, err
    assert "latest confirmed episode: 2 alarm(s) on feed:cme-mdp" in err
    assert "1 later confirmed episode(s) skipped: they recur at the same time of day" in err
    assert json.loads(out)["start"] == "2026-11-25T20:00:00Z"


def test_cms_rca_incident_latest_skips_a_market_that_opens_on_the_same_weekday_every_week(with_alarms: Path) -> None:
    # a feed and the job reading it alarm at the same time on the same weekday both weeks before (a market
    # that opens on Sunday evening): the latest is the weekly schedule, so --latest analyses the outage before it
    ont = load_ontology()
    job = next(j for j in ont.jobs.values() if j.feeds and "cme-mdp" not in j.feeds)
    feed = f"feed:{job.feeds[0]}"
    opening = pd.Timestamp(OUTAGE).tz_localize(None) + pd.Timedelta("9h")
    rows = []
    for k in (0, 7, 14):
        at = opening - pd.Timedelta(days=k)
        rows += [(at, f"{feed}|messages", feed, "messages"), (at + pd.Timedelta("3min"), f"{job.entity_id}|duration_s", job.entity_id, "duration_s")]
    _add_alarms(with_alarms, rows)
    code, out, err = _cli(["rca", "incident", "--latest", "--json", "--top", "1"])
    assert code == 0, err
    assert "latest confirmed episode: 2 alarm(s) on feed:cme-mdp" in err
    assert "1 later confirmed episode(s) skipped" in err
    assert json.loads(out)["start"] == "2026-11-25T20:00:00Z"


@pytest.mark.slow
def test_cms_rca_incident_latest_does_not_skip_a_fault_during_the_batch(with_alarms: Path) -> None:
    # the database alarms with its stage every evening (the batch); tonight a second stage on it alarms with
    # the database instead: one of its entities never alarmed then, so it is news (the rule incidents use)
    edges = load_ontology().dependency_edges()
    stage, db = next((s, t) for s, t in edges if s.startswith("stage:") and t.startswith("rds:"))
    other = next(s for s, t in edges if t == db and s.startswith("stage:") and s != stage)
    evening = pd.Timestamp(OUTAGE).tz_localize(None) + pd.Timedelta("7h")
    rows = []
    for k in range(1, 4):
        at = evening - pd.Timedelta(days=k)
        rows += [(at, f"{db}|CPUUtilization", db, "CPUUtilization"), (at + pd.Timedelta("4min"), f"{stage}|duration_s", stage, "duration_s")]
    rows += [(evening, f"{db}|CPUUtilization", db, "CPUUtilization"), (evening + pd.Timedelta("4min"), f"{other}|duration_s", other, "duration_s")]
    _add_alarms(with_alarms, rows)
    _, _, err = _cli(["rca", "incident", "--latest", "--json", "--top", "1"])
    assert f"latest confirmed episode: 2 alarm(s) on {db}, {other}" in err
