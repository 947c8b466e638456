"""Every page of the dashboard, run with Streamlit's AppTest on the scenario's warehouse: what an operator
sees on it, that the filters and deep links change it, and that empty or missing data give a clear
message instead of an error."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from dashboard_data import FAILED_RUN, PAGES, RUNNING_RUN
from streamlit.testing.v1 import AppTest

# how many charts each page draws on the scenario (every one of them with a table view)
CHARTS = {"overview": 0, "feeds": 3, "batches": 6, "stages": 3, "incidents": 1, "ask": 0}


# The pages render a scenario warehouse built by dbt once per run (about 20 s): every test here is slow.
pytestmark = pytest.mark.slow


def _blocks(node) -> list:
    out = [node]
    for child in (getattr(node, "children", None) or {}).values():
        out += _blocks(child)
    return out


def tables(at: AppTest) -> dict[str, pd.DataFrame]:
    """The page's table views by name (each sits in a container keyed table_<name>)."""
    out = {}
    for b in _blocks(at.main):
        block_id = getattr(getattr(b, "proto", None), "id", "") or ""
        if "-table_" in block_id and b.dataframe:
            out[block_id.rsplit("-table_", 1)[1]] = b.dataframe[0].value
    return out


def table(at: AppTest, name: str) -> pd.DataFrame:
    found = tables(at)
    assert name in found, f"no table {name!r}; tables: {sorted(found)}"
    return found[name]


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, texts(at.error)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_the_scenario_with_its_charts_and_their_tables(open_page, scenario_db: Path, page: str) -> None:
    at = open_page(scenario_db, page, range="7d")
    assert_clean(at)
    charts = at.get("plotly_chart")
    assert len(charts) == CHARTS[page], [c.proto.spec[:80] for c in charts]
    for c in charts:  # no empty chart: every chart has a trace with data
        assert '"x":' in c.proto.spec or '"z":' in c.proto.spec
    views = tables(at)
    chart_names = {c.proto.id.rsplit("-chart_", 1)[-1] for c in charts}
    assert len(chart_names) == CHARTS[page] and chart_names <= set(views)  # every chart has its table view
    assert all(len(views[name]) > 0 for name in chart_names)


def test_feed_grid_shows_the_outage_as_down_and_silent_feeds_as_no_data(open_page, scenario_db: Path) -> None:
    at = open_page(scenario_db, "feeds", range="24h", end="2026-11-16T12:00Z")
    assert_clean(at)
    grid = table(at, "availability")
    cme = grid[grid["feed_id"] == "cme-mdp"].set_index("bucket_ts")["state"]
    down = sorted(cme[cme == "down"].index.strftime("%H:%M"))
    assert down == ["05:45", "06:00", "06:15"]  # the 40-minute outage from 05:45, in 15-minute buckets
    assert set(grid.loc[grid["feed_id"] == "ebs-fx", "state"]) == {"no data"}
    assert "No heartbeats in this range from: ebs-fx" in texts(at.warning)


def test_feed_filter_keeps_only_that_feed_and_lands_in_the_url(open_page, scenario_db: Path) -> None:
    at = open_page(scenario_db, "feeds", range="24h", end="2026-11-17T12:00Z")
    assert set(table(at, "availability")["feed_id"]) > {"bloomberg-bpipe", "cme-mdp"}
    at.sidebar.selectbox(key="f_feed").select("bloomberg-bpipe").run()
    assert_clean(at)
    assert set(table(at, "availability")["feed_id"]) == {"bloomberg-bpipe"}
    assert set(table(at, "latency")["feed_id"]) == {"bloomberg-bpipe"}
    assert at.query_params["feed"] == ["bloomberg-bpipe"] or at.query_params["feed"] == "bloomberg-bpipe"


def test_batch_timeline_projects_the_running_run_past_its_deadline(open_page, scenario_db: Path) -> None:
    at = open_page(scenario_db, "batches", range="24h")
    assert_clean(at)
    gantt = table(at, "gantt").set_index("run_id")
    assert gantt.loc[RUNNING_RUN, "state"] == "running, projected late"
    assert "1 projected to miss the SLA: " + RUNNING_RUN in texts(at.caption)


def test_asset_class_filter_changes_every_batch_view(open_page, scenario_db: Path) -> None:
    at = open_page(scenario_db, "batches", range="7d")
    assert {"derivatives", "equities", "fx"} <= set(table(at, "sla_jobs")["asset_class_id"])
    at = open_page(scenario_db, "batches", range="7d", asset_class="equities")
    assert_clean(at)
    for key in ("gantt", "sla_jobs", "rates", "volume"):
        assert set(table(at, key)["asset_class_id"]) == {"equities"}, key
    sla = table(at, "sla_by_job").set_index("job_key")
    assert sla.loc["equities.corporate_actions", "failed"] == 1


def test_stage_page_shows_the_failed_stage_with_its_retries(open_page, scenario_db: Path) -> None:
    at = open_page(scenario_db, "stages", job="equities.corporate_actions", day="2026-11-16")
    assert_clean(at)
    grid = table(at, "stage_grid")
    run = grid[grid["run_id"] == FAILED_RUN].set_index("stage_id")
    assert run.loc["enrichment", "state"] == "failed" and run.loc["enrichment", "attempts"] == 3
    assert run.loc["loading", "state"] == "not started"
    assert at.query_params["run"] in (FAILED_RUN, [FAILED_RUN])


def test_stage_page_names_the_stage_still_running_and_its_resources(open_page, scenario_db: Path) -> None:
    at = open_page(scenario_db, "stages", job="derivatives.eod_valuation", day="2026-11-16", stage="loading")
    assert_clean(at)
    assert "holds the critical path" in texts(at.markdown)
    series = table(at, "resources")  # loading uses positions-db (and a queue the scenario has no series for)
    assert set(series["entity_id"]) == {"rds:positions-db"}
    assert set(series["metric"]) == {"CPUUtilization", "DatabaseConnections"}
    at = open_page(scenario_db, "stages", job="fx.spot_rates_snapshot", day="2026-11-17")
    assert_clean(at)
    assert "publication** is still running" in texts(at.warning)


def test_incident_page_shows_the_stored_report_of_the_feed_outage(open_page, scenario_db: Path) -> None:
    at = open_page(scenario_db, "incidents", range="7d")
    assert_clean(at)
    assert "evidence" not in tables(at)  # the evidence series are drawn on request
    at.button(key="draw_evidence_button").click().run()
    assert_clean(at)
    reports = table(at, "reports")
    assert list(reports["root cause"]) == ["feed:cme-mdp"]
    causes = table(at, "causes")
    assert (causes.iloc[0]["entity"], causes.iloc[0]["kind"]) == ("feed:cme-mdp", "feed_outage")
    assert "Probable feed outage on feed:cme-mdp" in texts(at.markdown).replace("\\", "")
    assert {"feed:cme-mdp"} <= set(table(at, "evidence")["entity"])  # the evidence series are drawn
    assert len(table(at, "report_timeline"))
    assert at.query_params["incident"] in (reports.iloc[0]["id"], [reports.iloc[0]["id"]])  # deep link


def test_incident_page_without_reports_ranks_the_alarm_episode(open_page, no_reports_db: Path) -> None:
    at = open_page(no_reports_db, "incidents", range="7d")
    assert_clean(at)
    assert "No incident report written" in texts(at.caption)
    assert "causes" not in tables(at)  # ranking reads a week of evidence: on request
    at.button(key="rank_episode_button").click().run()
    assert_clean(at)
    causes = table(at, "causes")
    assert (causes.iloc[0]["entity"], causes.iloc[0]["kind"]) == ("feed:cme-mdp", "feed_outage")
    assert "Most likely **feed outage** on **feed:cme-mdp**" in texts(at.markdown)
    assert "at" in at.query_params  # the episode chosen is in the URL


def test_a_deep_link_to_an_incident_ranks_it_at_once(open_page, no_reports_db: Path) -> None:
    at = open_page(no_reports_db, "incidents", range="7d", at="2026-11-16T05:46Z")
    assert_clean(at)
    assert table(at, "causes").iloc[0]["entity"] == "feed:cme-mdp"
    assert "evidence" in tables(at)


def test_incident_page_without_detection_says_what_to_run(open_page, no_alarms_db: Path) -> None:
    at = open_page(no_alarms_db, "incidents", range="7d")
    assert_clean(at)
    assert "anomaly detection has not run" in texts(at.info)


@pytest.mark.parametrize("page", [p for p in PAGES if p != "ask"])
def test_a_new_estate_with_empty_marts_gets_a_message_not_an_error(open_page, empty_db: Path, page: str) -> None:
    at = open_page(empty_db, page)
    assert_clean(at)
    assert "holds no" in texts(at.info)
    assert not at.get("plotly_chart")


@pytest.mark.parametrize("page", ["overview", "feeds", "batches"])
def test_no_warehouse_says_how_to_build_one(open_page, tmp_path: Path, page: str) -> None:
    at = open_page(tmp_path / "nowhere.duckdb", page)
    assert_clean(at)
    assert "No warehouse yet" in texts(at.info) and "make demo" in texts(at.info)
    assert not (tmp_path / "nowhere.duckdb").exists()  # reading never creates a warehouse


def test_unknown_deep_link_values_are_named_and_ignored(open_page, scenario_db: Path) -> None:
    at = open_page(scenario_db, "batches", range="1y", asset_class="crypto'; drop table marts.fct_batch_runs --")
    assert_clean(at)
    warnings = texts(at.sidebar.warning)
    assert "range='1y' is not one of 6h, 24h, 7d, 30d" in warnings and "asset_class=" in warnings
    assert len(table(at, "gantt"))  # the page shows every asset class instead


def test_ask_answers_a_deep_linked_question_with_its_table(open_page, scenario_db: Path) -> None:
    at = open_page(scenario_db, "ask", q="Show me all equities batch jobs that failed this week")
    assert_clean(at)
    assert "1 run failed" in texts(at.markdown)
    assert list(table(at, "answer")["run_id"]) == [FAILED_RUN]


def test_ask_refuses_a_question_outside_the_estate(open_page, scenario_db: Path) -> None:
    at = open_page(scenario_db, "ask")
    assert not at.dataframe
    at.text_input(key="ask_q").input("what is the weather in Paris").run()
    assert_clean(at)
    assert "out of scope" in texts(at.warning)
    assert at.query_params["q"] in ("what is the weather in Paris", ["what is the weather in Paris"])
