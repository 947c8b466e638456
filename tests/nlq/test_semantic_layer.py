"""The semantic layer: the measures cms ask compiles are the dbt semantic layer's metrics, on the same
marts, and every column a compiled question reads is a documented column of its mart."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlglot
import yaml
from sqlglot import exp

from cms_dagster.domain import Ontology
from cms_dagster.nlq import semantic, timephrase
from cms_dagster.nlq.compile import compile_query
from cms_dagster.nlq.offline import OfflineEngine

ROOT = Path(__file__).resolve().parents[2]
DBT = ROOT / "dbt_project" / "models"


def _models() -> dict[str, set[str]]:
    cols: dict[str, set[str]] = {}
    for f in (DBT / "marts").rglob("_*models.yml"):
        for m in yaml.safe_load(f.read_text()).get("models", []):
            cols[m["name"]] = {c["name"] for c in m.get("columns", [])}
    return cols


def _semantic() -> dict:
    return yaml.safe_load((DBT / "semantic" / "_semantic__models.yml").read_text())


def test_every_measure_of_cms_ask_is_a_dbt_metric_on_the_same_mart() -> None:
    doc = _semantic()
    metrics = {m["name"]: m for m in doc["metrics"]}
    model_of_measure = {
        ms["name"]: sm["model"].split("'")[1] for sm in doc["semantic_models"] for ms in sm.get("measures", [])
    }

    def marts_of(name: str) -> set[str]:
        tp = metrics[name]["type_params"]
        if "measure" in tp:
            return {model_of_measure[tp["measure"]]}
        if "numerator" in tp:
            return marts_of(tp["numerator"]) | marts_of(tp["denominator"])
        return set().union(*(marts_of(m["name"]) for m in tp["metrics"]))

    for name, m in semantic.METRICS.items():
        assert name in metrics, f"{name} is not a metric of dbt_project/models/semantic"
        assert marts_of(name) == {m.table}, name


def test_semantic_tables_and_time_columns_are_documented_mart_columns() -> None:
    cols = _models()
    for t in semantic.TABLES.values():
        assert t.name in cols and (not t.time_column or t.time_column in cols[t.name]), t.name
        assert set(t.columns) <= cols[t.name], set(t.columns) - cols[t.name]
    for m in semantic.METRICS.values():
        assert m.time_column in cols[m.table], m.name


@pytest.mark.slow
def test_compiled_questions_read_only_documented_columns(ontology: Ontology) -> None:
    cols = _models()
    gold = json.loads((ROOT / "benchmarks" / "nlq" / "gold.json").read_text())
    eng = OfflineEngine(ontology)
    seen = 0
    for g in gold:
        as_of = timephrase.parse_as_of(g["as_of"])
        p = eng.parse(g["question"], as_of)
        assert p.query is not None, g["question"]
        w = timephrase.resolve(p.query.time, as_of)
        sql = compile_query(p.query, ontology, w, as_of, as_of - dt.timedelta(days=60)).sql
        tree = sqlglot.parse_one(sql, read="duckdb")
        aliases = {t.alias_or_name: t.name for t in tree.find_all(exp.Table)}
        for c in tree.find_all(exp.Column):
            mart = aliases.get(c.table)
            if mart in cols:
                assert c.name in cols[mart], f"{g['question']}: {mart}.{c.name} is not a documented column"
                seen += 1
    assert seen > 1000


@pytest.mark.parametrize("name", sorted(semantic.METRICS))
def test_every_measure_says_what_usual_means(name: str) -> None:
    assert semantic.METRICS[name].usual and "7 days" in semantic.METRICS[name].usual
