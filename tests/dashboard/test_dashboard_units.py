"""The dashboard's plain parts: deep-link filters, feed states, the Gantt projection, the bottleneck, and
the `cms dashboard` command."""

from __future__ import annotations

import pandas as pd
import pytest

from cms_dagster.cli import main
from cms_dagster.dashboard import filters, transform
from cms_dagster.dashboard.cli import streamlit_command
from cms_dagster.domain import load_ontology

ONT = load_ontology()


def test_deep_link_round_trips_through_the_url() -> None:
    f, problems = filters.from_params(
        {"range": "7d", "end": "2026-11-18T14:00Z", "asset_class": "fx", "job": "fx.spot_rates_snapshot",
         "feed": "ebs-fx", "day": "2026-11-17", "run": "r1", "stage": "ingest", "q": "failed runs today"}, ONT)
    assert problems == []
    again, _ = filters.from_params(f.to_params(), ONT)
    assert again == f
    assert f.window(pd.Timestamp("2026-11-20")) == (pd.Timestamp("2026-11-11T14:00"), pd.Timestamp("2026-11-18T14:00"))


def test_window_ends_just_after_the_latest_data_by_default() -> None:
    f, _ = filters.from_params({}, ONT)
    assert f.window(pd.Timestamp("2026-11-18 00:08:30")) == (pd.Timestamp("2026-11-17 00:09"), pd.Timestamp("2026-11-18 00:09"))


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"range": "1y"}, "range='1y' is not one of 6h, 24h, 7d, 30d"),
        ({"end": "yesterday"}, "'yesterday' is not an ISO-8601 time"),
        ({"job": "x'; drop table marts.fct_batch_runs"}, "is not in the ontology"),
        ({"feed": "nope"}, "feed='nope' is not in the ontology"),
        ({"day": "2026-13-01"}, "day='2026-13-01' is not a date"),
    ],
)
def test_bad_deep_link_values_are_dropped_with_a_message(params: dict, says: str) -> None:
    f, problems = filters.from_params(params, ONT)
    assert f == filters.Filters() and len(problems) == 1 and says in problems[0]


def test_scope_follows_asset_class_to_its_jobs_and_their_feeds() -> None:
    f = filters.Filters(asset_class="fx")
    assert f.jobs(ONT) == sorted(k for k in ONT.jobs if k.startswith("fx."))
    assert set(f.feeds(ONT)) == {fd for k in f.jobs(ONT) for fd in ONT.jobs[k].feeds}


def test_feed_minute_states_rank_down_over_stale_over_delayed() -> None:
    sla = transform.latency_sla_ms(ONT)["cme-mdp"]
    minutes = pd.DataFrame({
        "feed_id": ["cme-mdp"] * 5,
        "is_up": [True, True, True, False, None],
        "is_stale": [False, False, True, True, None],
        "latency_ms": [1.0, sla * 1.5, sla * 1.5, 1.0, None],
    })
    assert list(transform.feed_states_from_minutes(minutes, ONT)) == ["ok", "delayed", "stale", "down", "no data"]
    grid = transform.availability_grid(
        minutes.assign(minute_ts=pd.date_range("2026-11-16 10:00", periods=5, freq="min")),
        transform.feed_states_from_minutes(minutes, ONT), "minute_ts", pd.Timedelta(minutes=5),
        pd.Timestamp("2026-11-16 10:00"), pd.Timestamp("2026-11-16 10:10"), ["cme-mdp", "ebs-fx"])
    assert list(grid["state"]) == ["down", "no data", "no data", "no data"]
    assert grid.iloc[0][["ok", "delayed", "stale", "down"]].tolist() == [1, 1, 1, 1]


def test_a_running_run_is_projected_from_its_usual_duration_against_its_deadline() -> None:
    start = pd.Timestamp("2026-11-17 14:05")
    runs = pd.DataFrame({
        "run_id": ["a", "b"], "job_key": ["fx.x", "fx.y"], "asset_class_id": ["fx", "fx"],
        "status": ["running", "running"], "actual_start_ts": [start, start], "actual_end_ts": [pd.NaT, pd.NaT],
        "sla_deadline_ts": [start + pd.Timedelta(minutes=30), start + pd.Timedelta(minutes=90)],
        "is_sla_breached": [False, False], "records": [0, 0],
    })
    usual = pd.DataFrame({"job_key": ["fx.x", "fx.y"], "usual_duration_s": [3600.0, 3600.0]})
    bars = transform.gantt_rows(runs, usual, start + pd.Timedelta(minutes=10)).set_index(["run_id", "state"])
    assert bars.loc[("a", "running, projected late"), "projected_end"] == start + pd.Timedelta(hours=1)
    assert bars.loc[("b", "running"), "bar_end"] == start + pd.Timedelta(minutes=10)
    assert bars.loc[("b", "projected"), "bar_end"] == start + pd.Timedelta(hours=1)


def test_bottleneck_is_the_critical_stage_furthest_past_its_usual() -> None:
    rows = pd.DataFrame({
        "stage_id": ["ingest", "valuation", "report"], "is_on_critical_path": [True, True, False],
        "elapsed_s": [600.0, 3000.0, 9000.0], "baseline_elapsed_s": [500.0, 1800.0, 100.0],
        "share_of_critical_path_pct": [16.7, 83.3, None], "critical_path": ["ingest > valuation"] * 3,
    })
    b = transform.bottleneck(rows)
    assert b.stage_id == "valuation" and b.excess_s == 1200.0
    assert "20 min (1.7x) longer than usual (30 min)" in b.sentence()


def test_cms_dashboard_help_teaches_and_a_bad_port_is_one_line(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["dashboard", "--help"])
    out = capsys.readouterr().out
    assert "deep link" in out and "--port" in out
    assert main(["dashboard", "--port", "70000"]) == 2
    assert capsys.readouterr().err.strip() == "cms dashboard: --port 70000 is not a TCP port (1-65535)"
    cmd = streamlit_command("127.0.0.1", 8600)
    assert cmd[cmd.index("--server.port") + 1] == "8600" and cmd[cmd.index("--server.headless") + 1] == "true"


def test_demo_names_the_dashboard_under_where_to_look(cms_home) -> None:
    import argparse

    from cms_dagster import settings
    from cms_dagster.demo import where_to_look

    out = "\n".join(where_to_look(settings.load(), argparse.Namespace(host="127.0.0.1", port=3000, dashboard_port=8600, seed=42)))
    assert "dashboard         http://127.0.0.1:8600" in out.split("Where to look", 1)[1]
