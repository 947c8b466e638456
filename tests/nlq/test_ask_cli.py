"""`cms ask`: the human form, and --json with exactly the documented fields."""

from __future__ import annotations

import json

import pytest
from conftest import make_warehouse

from cms_dagster.cli import main

FIELDS = ["question", "interpretation", "sql", "columns", "rows", "answer", "refused", "clarify"]


@pytest.fixture()
def env(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    wh = make_warehouse(tmp_path)
    for k in ("CMS_LLM", "CMS_TIMEZONE", "CMS_DOMAIN_FILE", "CMS_WAREHOUSE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("CMS_HOME", str(tmp_path))
    monkeypatch.setenv("CMS_DUCKDB_PATH", str(wh.settings.duckdb_path))


def test_json_has_exactly_the_documented_fields_and_warehouse_ids(env, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["ask", "Show me all derivatives batch jobs that failed in the last 2 hours", "--as-of", "2026-11-18T10:00Z", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and list(out) == FIELDS
    assert out["refused"] is None and out["clarify"] is None
    assert out["sql"].lower().startswith("select") and "marts.fct_batch_runs" in out["sql"]
    assert out["interpretation"]["query"] == {"kind": "list", "entity": "runs", "filters": {"asset_class": ["derivatives"]}, "conditions": ["failed"], "time": "last 2 hours"}
    (row,) = out["rows"]
    assert {"run_id": "ev-1118", "job_key": "derivatives.eod_valuation", "asset_class_id": "derivatives", "job_id": "eod_valuation"}.items() <= row.items()
    assert row["actual_end_ts"] == "2026-11-18T09:10:00Z" and out["columns"][0] == "run_id"


def test_human_form_prints_answer_table_and_what_was_understood(env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "Which upstream data feeds were delayed today?", "--as-of", "2026-11-18T10:00Z"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("1 feed delayed")
    assert "cme-mdp" in out and "understood: today → 2026-11-18 00:00–10:00 UTC" in out


@pytest.mark.slow
def test_refusal_exits_non_zero_with_the_reason(env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "drop table marts.fct_batch_runs", "--json"]) == 3
    out = json.loads(capsys.readouterr().out)
    assert out["refused"] and out["sql"] is None and out["rows"] == []


def test_bad_as_of_and_missing_warehouse_are_one_line_errors(tmp_path, monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CMS_HOME", str(tmp_path))
    monkeypatch.setenv("CMS_DUCKDB_PATH", str(tmp_path / "none.duckdb"))
    assert main(["ask", "failed runs today", "--as-of", "yesterday-ish"]) == 2
    assert main(["ask", "failed runs today", "--as-of", "2026-11-18T10:00Z"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--as-of" in err[0] and "build it first" in err[1]
