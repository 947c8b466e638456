"""Questions in people's words answered from a small warehouse whose answers are known."""

from __future__ import annotations

import datetime as dt

import duckdb
import nlq_marts
import pytest
from conftest import make_warehouse
from nlq_marts import AS_OF

from cms_dagster.domain import Ontology
from cms_dagster.nlq import ask
from cms_dagster.warehouse.client import Warehouse


def ids(answer, *keys: str) -> list:
    return sorted(tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]] for r in answer.rows)


def test_derivatives_jobs_that_failed_in_the_last_two_hours(warehouse: Warehouse, ontology: Ontology) -> None:
    a = ask("Show me all derivatives batch jobs that failed in the last 2 hours", warehouse, ontology, AS_OF)
    assert (a.refused, a.clarify) == (None, None)
    assert ids(a, "run_id") == ["ev-1118"]
    assert a.rows[0]["job_key"] == "derivatives.eod_valuation" and a.rows[0]["actual_end_ts"] == "2026-11-18T09:10:00Z"
    understood = "; ".join(a.interpretation["understood"])
    assert "derivatives → asset class derivatives" in understood and "08:00–10:00 UTC" in understood


def test_upstream_feeds_delayed_today(warehouse: Warehouse, ontology: Ontology) -> None:
    a = ask("Which upstream data feeds was delayed today?", warehouse, ontology, AS_OF)
    assert ids(a, "feed_id") == ["cme-mdp"]
    assert a.rows[0]["stale_minutes"] == 40


def test_critical_sub_stages_longer_than_usual_today_say_which_usual(warehouse: Warehouse, ontology: Ontology) -> None:
    a = ask("Are there any critical sub-stages taking longer than usual today?", warehouse, ontology, AS_OF)
    assert ids(a, "run_id", "stage_id") == [("ca-1118", "enrichment")]
    assert a.rows[0]["usual_value"] == 600.0
    assert "7 days before" in a.answer and "1.5" in a.answer
    assert "7 days" in a.interpretation["usual"]["reference"]


def test_usual_uses_the_same_weekday_once_four_weeks_exist(tmp_path, ontology: Ontology) -> None:
    wh = make_warehouse(tmp_path, history_days=35)
    a = ask("any stages slower than normal today?", wh, ontology, AS_OF)
    assert ids(a, "run_id", "stage_id") == [("ca-1118", "enrichment")]
    assert "same weekday" in a.interpretation["usual"]["reference"]
    assert len(a.interpretation["usual"]["windows"]) == 4


@pytest.mark.slow
@pytest.mark.parametrize(
    "question, key, expected",
    [
        ("how many runs failed yesterday?", "failures", 1),
        ("number of failures in the last 24 hours", "failures", 1),
        ("how many outages did cme have today", "outages", 1),
    ],
)
def test_counts(warehouse: Warehouse, ontology: Ontology, question: str, key: str, expected: int) -> None:
    a = ask(question, warehouse, ontology, AS_OF)
    assert a.rows == [{key: expected}], a.interpretation


def test_failure_rate_by_asset_class(warehouse: Warehouse, ontology: Ontology) -> None:
    a = ask("failure rate by asset class today", warehouse, ontology, AS_OF)
    assert {r["asset_class_id"]: r["failure_rate"] for r in a.rows} == {"derivatives": 50.0, "equities": 0.0, "fx": 0.0}


def test_resources_above_a_threshold(warehouse: Warehouse, ontology: Ontology) -> None:
    a = ask("which databases had CPU above 80 % today?", warehouse, ontology, AS_OF)
    assert ids(a, "resource_id") == ["rds:positions-db"]
    assert ask("which databases had CPU above 95 % today?", warehouse, ontology, AS_OF).rows == []


def test_running_now_and_sla_breaches(warehouse: Warehouse, ontology: Ontology) -> None:
    assert ids(ask("which jobs are still running?", warehouse, ontology, AS_OF), "run_id") == ["late-run"]
    assert ids(ask("which jobs missed their SLA today", warehouse, ontology, AS_OF), "run_id") == ["ca-1118", "ev-1118"]


def test_as_of_makes_answers_reproducible(warehouse: Warehouse, ontology: Ontology) -> None:
    earlier = AS_OF - dt.timedelta(hours=2)
    assert ask("failed runs in the last 2 hours", warehouse, ontology, earlier).rows == []
    a = ask("failed runs in the last 2 hours", warehouse, ontology, "2026-11-18T10:00:00Z")
    assert ids(a, "run_id") == ["ev-1118"]


def test_today_is_the_business_day_of_cms_timezone(tmp_path, ontology: Ontology) -> None:
    # 10:00 UTC is 05:00 in New York: "today" there began at 05:00 UTC, after the 03:00 runs of nothing;
    # yesterday (New York) holds the margin calculation failure of 2026-11-17 06:00 UTC
    wh = make_warehouse(tmp_path, CMS_TIMEZONE="America/New_York")
    a = ask("how many runs failed yesterday", wh, ontology, AS_OF)
    assert a.interpretation["window"] == {"start": "2026-11-17T05:00:00Z", "end": "2026-11-18T05:00:00Z", "phrase": "yesterday"}
    assert a.rows == [{"failures": 1}]


def test_data_values_holding_instructions_are_only_data(warehouse: Warehouse, ontology: Ontology) -> None:
    a = ask("which runs failed yesterday?", warehouse, ontology, AS_OF)
    assert [r["error_type"] for r in a.rows] == [nlq_marts.INJECTED]
    again = ask("how many runs failed yesterday?", warehouse, ontology, AS_OF)
    assert again.rows == [{"failures": 1}]  # the table is still there, unchanged


def test_an_ambiguous_question_gets_a_question_back(warehouse: Warehouse, ontology: Ontology) -> None:
    for q in ("is everything ok?", "how long did it take?"):
        a = ask(q, warehouse, ontology, AS_OF)
        assert a.clarify and a.refused is None and a.rows == [] and a.sql is None, q


def test_out_of_scope_questions_are_refused_with_a_reason(warehouse: Warehouse, ontology: Ontology) -> None:
    for q in ("what's the weather in London?", "write me a poem about bonds"):
        a = ask(q, warehouse, ontology, AS_OF)
        assert a.refused and "out of scope" in a.refused and a.sql is None, q


def test_which_jobs_depend_on_a_feed_comes_from_the_ontology_in_the_warehouse(tmp_path, ontology: Ontology) -> None:
    wh = make_warehouse(tmp_path)
    con = duckdb.connect(str(wh.settings.duckdb_path))
    con.execute(
        "create table marts.dim_job as select 'derivatives.margin_calculation' as job_key, 'derivatives' as asset_class_id, "
        "'margin_calculation' as job_id, 'Initial margin calculation' as job_name, '0 6,14 * * 1-5' as schedule_cron, "
        "45 as sla_minutes, 28.0 as expected_minutes, 'cme-mdp' as required_feeds"
    )
    con.close()
    a = ask("Which jobs depend on the CME feed?", wh, ontology, AS_OF)
    assert a.interpretation["query"]["entity"] == "jobs"
    assert ids(a, "job_key") == ["derivatives.margin_calculation"] and "in the ontology" in a.answer
