"""Metric questions are compiled by MetricFlow from the dbt semantic layer: the SQL it writes passes the
guard and gives the same answers the sqlglot compiler gave; what it cannot express falls back."""

from __future__ import annotations

from pathlib import Path

import pytest
from nlq_marts import AS_OF
from sqlglot import exp

from cms_dagster.domain import Ontology
from cms_dagster.nlq import guard, metricflow_sql
from cms_dagster.nlq.answer import ask
from cms_dagster.warehouse.client import Warehouse

MANIFEST = Path(__file__).resolve().parents[2] / "dbt_project" / "target" / "semantic_manifest.json"
NO_MANIFEST = Path("/nonexistent/semantic_manifest.json")


@pytest.fixture(scope="module")
def manifest() -> Path:
    assert MANIFEST.exists(), "run `cms dbt prepare` (make prepare) first: it writes target/semantic_manifest.json"
    return MANIFEST


@pytest.mark.parametrize(
    "question",
    [
        "how many runs failed in the last 2 hours",
        "failure rate by asset class today",
        "availability by feed today",
        "sla compliance by job this week",
        "runs by hour today",
        "peak cpu by resource today",
        "failures of derivatives jobs by day this week",
        "failure rate by job above 10 % today",
        "availability by feed below 99 % today",
        "how many SLA breaches this week",  # a metric whose filter is one boolean column
    ],
)
def test_a_metric_question_is_compiled_by_metricflow_passes_the_guard_and_answers_as_before(
    question: str, warehouse: Warehouse, ontology: Ontology, manifest: Path
) -> None:
    a = ask(question, warehouse, ontology, AS_OF, semantic_manifest=manifest)
    assert a.interpretation is not None and a.interpretation["compiler"] == "metricflow", a.interpretation
    assert a.sql is not None
    tree = guard.check(a.sql)  # raises if it is not one bounded SELECT over the allow-listed marts
    assert {t.db for t in tree.find_all(exp.Table)} == {"marts"}
    before = ask(question, warehouse, ontology, AS_OF, semantic_manifest=NO_MANIFEST)
    assert before.interpretation is not None and before.interpretation["compiler"] == "sqlglot"
    assert a.rows and a.rows == before.rows
    assert a.answer == before.answer


@pytest.mark.parametrize(
    ("sql_filter", "want"),
    [
        ("is_sla_breached", "{{ Dimension('run__is_sla_breached') }}"),
        ("status = 'failed'", "{{ Dimension('run__status') }} = 'failed'"),
        ("not is_sla_breached and status in ('success')", "NOT {{ Dimension('run__is_sla_breached') }} AND {{ Dimension('run__status') }} IN ('success')"),
    ],
)
def test_every_column_of_a_metric_filter_becomes_a_dimension(sql_filter: str, want: str) -> None:
    assert metricflow_sql._where("run", sql_filter) == want


def test_a_comparison_with_usual_is_still_compiled_by_sqlglot(warehouse: Warehouse, ontology: Ontology, manifest: Path) -> None:
    a = ask("failure rate by job higher than usual today", warehouse, ontology, AS_OF, semantic_manifest=manifest)
    assert a.interpretation is not None and a.interpretation.get("compiler") == "sqlglot", a.interpretation


def test_metricflow_is_never_given_a_connection_to_run_sql(manifest: Path) -> None:
    client = metricflow_sql.engine(manifest)._sql_client
    with pytest.raises(RuntimeError, match="only compiles"):
        client.query("select 1")
