"""Fixtures of the warehouse tests: the ontology and the hand-made scenario as processed Parquet."""

from __future__ import annotations

import pytest
import warehouse_scenario as scenario
from warehouse_helpers import ScenarioLake

from cms_dagster.domain import Ontology, load_ontology


@pytest.fixture(scope="session")
def ontology() -> Ontology:
    return load_ontology()


@pytest.fixture(scope="session")
def scenario_lake(tmp_path_factory: pytest.TempPathFactory, ontology: Ontology) -> ScenarioLake:
    sc = scenario.default_scenario()
    processed = tmp_path_factory.mktemp("scenario") / "processed"
    keys = scenario.write_processed(sc, ontology, processed)
    return ScenarioLake(sc, processed, keys)
