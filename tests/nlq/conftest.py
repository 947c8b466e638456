"""Fixtures of the question-answering tests: the ontology and small warehouses with known answers."""

from __future__ import annotations

from pathlib import Path

import nlq_marts
import pytest

from cms_dagster import settings as settings_mod
from cms_dagster.domain import Ontology, load_ontology
from cms_dagster.warehouse.client import Warehouse


@pytest.fixture(scope="session")
def ontology() -> Ontology:
    return load_ontology()


def make_warehouse(root: Path, history_days: int = 7, **env: str) -> Warehouse:
    db = nlq_marts.write(root / "warehouse.duckdb", history_days)
    return Warehouse(settings_mod.load({"CMS_HOME": str(root), "CMS_DUCKDB_PATH": str(db), **env}))


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    return make_warehouse(tmp_path_factory.mktemp("nlq"))
