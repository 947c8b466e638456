"""The guard accepts one bounded SELECT over the allowed marts and refuses everything else, and the
runner is read-only with a timeout whatever SQL reaches it."""

from __future__ import annotations

import pytest

from cms_dagster.nlq import guard
from cms_dagster.nlq.execute import ExecutionError, run_readonly
from cms_dagster.warehouse.client import Warehouse

GOOD = "select run_id from marts.fct_batch_runs where status = 'failed' limit 10"


def test_a_bounded_select_over_a_mart_passes() -> None:
    assert guard.check(GOOD).sql()
    assert guard.check("with u as (select job_key from marts.fct_batch_runs r) select * from u limit 5")


@pytest.mark.parametrize(
    "sql, reason",
    [
        ("drop table marts.fct_batch_runs", "only a SELECT"),
        ("delete from marts.fct_batch_runs", "only a SELECT"),
        ("insert into marts.fct_batch_runs select * from marts.fct_batch_runs", "only a SELECT"),
        ("update marts.fct_batch_runs set status = 'success'", "only a SELECT"),
        ("create table marts.x as select 1", "only a SELECT"),
        (GOOD + "; drop table marts.fct_batch_runs", "exactly one statement"),
        (GOOD + "; select 1", "exactly one statement"),
        ("select * from raw.metric_points limit 5", "not an allowed mart"),
        ("select * from staging.stg_cms__batch_run_events limit 5", "not an allowed mart"),
        ("select * from information_schema.tables limit 5", "not an allowed mart"),
        ("select * from marts.fct_batch_runs, information_schema.columns limit 5", "not an allowed mart"),
        ("select * from fct_batch_runs limit 5", "not an allowed mart"),
        ("select * from other_db.marts.fct_batch_runs limit 5", "not an allowed mart"),
        ("select * from read_csv('/etc/passwd') limit 5", "not allowed"),
        ("select * from '/etc/passwd' limit 5", "not an allowed mart"),
        ("select getenv('HOME') from marts.fct_batch_runs limit 1", "not allowed"),
        ("select * from marts.fct_batch_runs", "unbounded"),
        ("select * from marts.fct_batch_runs limit 100000", "above the row limit"),
        ("select * from marts.fct_batch_runs where run_id in (select run_id from raw.metric_points) limit 3", "not an allowed mart"),
        ("copy marts.fct_batch_runs to '/tmp/x.csv'", "only a SELECT"),
        ("attach '/tmp/other.duckdb' as other", "only a SELECT"),
        ("", "empty"),
    ],
)
def test_everything_else_is_refused_with_the_reason(sql: str, reason: str) -> None:
    with pytest.raises(guard.GuardError, match=reason):
        guard.check(sql)


def test_the_runner_cannot_write_even_if_sql_gets_past(warehouse: Warehouse) -> None:
    with pytest.raises(ExecutionError, match="read-only|read only"):
        run_readonly(warehouse, "create table marts.evil as select 1")
    with pytest.raises(ExecutionError):
        run_readonly(warehouse, "select * from read_csv('/etc/passwd')")
    assert len(run_readonly(warehouse, GOOD)) == 2


def test_a_query_past_the_statement_timeout_is_stopped(warehouse: Warehouse) -> None:
    with pytest.raises(ExecutionError, match="longer than"):
        run_readonly(warehouse, "select count(*) from range(10000000000) a, range(1000) b", timeout_s=0.3)
