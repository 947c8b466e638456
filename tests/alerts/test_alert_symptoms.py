"""Symptoms page, unexplained episodes warn, and `cms alerts` shows them: on a warehouse with a feed outage."""

import argparse
import io
import json
from pathlib import Path

import pandas as pd
import pytest

from cms_dagster import settings as settings_mod
from cms_dagster.alerts import cli as alerts_cli
from cms_dagster.alerts.run import collect_alerts, data_until
from cms_dagster.alerts.symptoms import check_alert
from cms_dagster.domain import load_ontology
from cms_dagster.warehouse.client import Warehouse
from tests.incidents.incident_fixtures import OUTAGE, write_alarms, write_marts


@pytest.fixture()
def estate(cms_home: Path, monkeypatch: pytest.MonkeyPatch) -> settings_mod.Settings:
    path = cms_home / "warehouse.duckdb"
    write_marts(path)
    write_alarms(path)
    monkeypatch.setenv("CMS_DUCKDB_PATH", str(path))
    return settings_mod.load()


def _cli(argv: list[str]) -> tuple[int, str, str]:
    p = argparse.ArgumentParser(prog="cms")
    alerts_cli.register(p.add_subparsers(dest="command"))
    args = p.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    return args.func(args, stdout=out, stderr=err), out.getvalue(), err.getvalue()


def test_the_feed_outage_and_the_late_run_page_and_carry_the_incident(estate):
    wh = Warehouse(estate)
    until = data_until(wh.query)
    alerts = collect_alerts(wh.query, load_ontology(), (until - pd.Timedelta("2d")).to_pydatetime(), until, dagster_url="http://ui:3000")
    by_source = {}
    for a in alerts:
        by_source.setdefault(a.source, []).append(a)
    (feed,) = by_source["feed"]
    assert feed.page and feed.at == "2026-11-25T20:00:00Z" and feed.resolved_at == "2026-11-25T20:40:00Z"
    assert feed.labels["feed"] == "cme-mdp" and feed.incident_id.startswith("inc-20261125-2000-")
    assert feed.link == "http://ui:3000/assets/dbt/fct_feed_status"
    (late,) = by_source["batch_run"]
    assert late.page and "projected to miss" in late.summary and late.at == "2026-11-25T21:10:00Z"
    # the outage's episode has its symptom, so no extra warning; the lone alarm is not confirmed
    assert "anomaly" not in by_source


@pytest.mark.slow
def test_an_episode_without_symptom_is_a_warning_that_does_not_page(estate):
    # a confirmed episode on the database alone (an extreme alarm that holds: the series alarms again), with no
    # feed or run symptom
    t = pd.Timestamp(OUTAGE).tz_localize(None) + pd.Timedelta("3h")
    write_alarms(
        estate.duckdb_path,
        extra=[
            (t, "rds:risk-db", "CPUUtilization", 0.995),
            (t + pd.Timedelta("5min"), "rds:risk-db", "CPUUtilization", 0.9),
        ],
    )
    wh = Warehouse(estate)
    until = data_until(wh.query)
    alerts = collect_alerts(wh.query, load_ontology(), (until - pd.Timedelta("2d")).to_pydatetime(), until)
    (warn,) = [a for a in alerts if a.source == "anomaly"]
    assert not warn.page and warn.severity == "warning" and "rds:risk-db" in warn.summary
    assert warn.incident_id.startswith("inc-20261125-2300-")
    # it resolves only when its incident closes: two hours after the last alarm, when no episode can join
    last = pd.Timestamp(t, tz="UTC") + pd.Timedelta("5min")
    at = {h: [a for a in collect_alerts(wh.query, load_ontology(), (until - pd.Timedelta("2d")).to_pydatetime(), last + pd.Timedelta(hours=h))
              if a.source == "anomaly"] for h in (1, 3)}
    assert at[1][0].resolved_at is None
    assert at[3][0].resolved_at == "2026-11-26T01:05:00Z"


def test_asset_check_alerts_page_on_error_and_resolve_when_it_passes():
    failing = check_alert("dbt/fct_feed_status", "not_null_feed_id", False, "ERROR", "2026-11-25T20:00:00Z")
    assert failing.page and failing.resolved_at is None
    warn = check_alert("processed/points", "nothing_in_quarantine", False, "WARN", "2026-11-25T20:00:00Z")
    assert not warn.page
    fixed = check_alert("dbt/fct_feed_status", "not_null_feed_id", True, "ERROR", "2026-11-25T21:00:00Z", first_failed_at="2026-11-25T20:00:00Z")
    assert fixed.dedup_key == failing.dedup_key and fixed.resolved_at == "2026-11-25T21:00:00Z"
    assert check_alert("a", "c", True, "ERROR", "2026-11-25T21:00:00Z") is None


def test_cms_alerts_evaluate_list_and_test(estate):
    code, out, err = _cli(["alerts", "list", "--json"])
    assert code == 0 and json.loads(out) == []
    code, out, err = _cli(["alerts", "evaluate", "--since", "2d"])
    assert code == 0, err
    assert "message(s) sent" in out
    code, out, _ = _cli(["alerts", "list", "--json"])
    rows = json.loads(out)
    assert {"id", "dedup_key", "severity", "page", "source", "at", "resolved_at", "incident_id", "channels"} <= set(rows[0])
    feed = next(r for r in rows if r["source"] == "feed")
    assert feed["page"] and feed["at"] == "2026-11-25T20:00:00Z" and feed["channels"] == ["outbox"]
    code, out, _ = _cli(["alerts", "list"])
    assert code == 0 and "PAGE" in out and "feed cme-mdp interrupted" in out
    code, out, err = _cli(["alerts", "test", "--channel", "outbox"])
    assert code == 0 and "sent a test message through outbox" in out
    code, out, err = _cli(["alerts", "test", "--channel", "sns"])
    assert code == 2 and "CMS_ALERT_CHANNELS" in err


@pytest.mark.slow
def test_the_demo_ends_with_the_weeks_incidents_and_the_alerts_in_the_outbox(estate, capsys):
    from cms_dagster.demo import show_incidents_and_alerts

    done = show_incidents_and_alerts(estate, say=lambda m: None)
    out = capsys.readouterr().out
    assert done["incidents"] == 1 and done["messages"] >= 2
    assert "The week's incidents (1;" in out and "feed:cme-mdp (feed_outage)" in out
    assert "Alerts in the outbox:" in out and "feed cme-mdp interrupted" in out


@pytest.mark.slow
def test_the_demo_run_again_lists_what_it_wrote_without_building_it_again(estate, capsys):
    from cms_dagster.demo import show_incidents_and_alerts

    show_incidents_and_alerts(estate, say=lambda m: None)
    capsys.readouterr()
    again = show_incidents_and_alerts(estate, say=lambda m: None, build=False)
    out = capsys.readouterr().out
    assert again["incidents"] == 1 and "feed:cme-mdp (feed_outage)" in out
