"""Fixtures of the dashboard tests: the scenario's warehouse (built once), an empty one, and an
environment pointing the dashboard at either."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest
from dashboard_data import add_alarms, add_incident_reports, build_scenario_warehouse, empty_marts
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "cms_dagster" / "dashboard" / "app.py"


@pytest.fixture(scope="session")
def scenario_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("dashboard_scenario")
    db = build_scenario_warehouse(work)
    add_alarms(db)
    add_incident_reports(db, work / "home")
    return db


def _copy_without(tmp_path_factory: pytest.TempPathFactory, src: Path, name: str, tables: list[str]) -> Path:
    db = tmp_path_factory.mktemp(name) / "warehouse.duckdb"
    shutil.copyfile(src, db)
    con = duckdb.connect(str(db))
    for t in tables:
        con.execute(f"drop table {t}")
    con.close()
    return db


@pytest.fixture(scope="session")
def empty_db(tmp_path_factory: pytest.TempPathFactory, scenario_db: Path) -> Path:
    return empty_marts(scenario_db, tmp_path_factory.mktemp("dashboard_empty") / "warehouse.duckdb")


@pytest.fixture(scope="session")
def no_alarms_db(tmp_path_factory: pytest.TempPathFactory, scenario_db: Path) -> Path:
    """The scenario without intelligence.anomalies and incidents: detection never ran."""
    return _copy_without(tmp_path_factory, scenario_db, "dashboard_no_alarms",
                         ["intelligence.anomalies", "intelligence.incidents"])


@pytest.fixture(scope="session")
def no_reports_db(tmp_path_factory: pytest.TempPathFactory, scenario_db: Path) -> Path:
    """The scenario with alarms but no incident report written yet."""
    return _copy_without(tmp_path_factory, scenario_db, "dashboard_no_reports", ["intelligence.incidents"])


@pytest.fixture
def open_page(cms_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., AppTest]]:
    """open_page(db, page, **query_params): the app run on ``db`` with ``page`` shown, as a deep link would."""

    def _open(db: Path, page: str, **params: str) -> AppTest:
        monkeypatch.setenv("CMS_DUCKDB_PATH", str(db))
        at = AppTest.from_file(str(APP), default_timeout=180)
        for k, v in params.items():
            at.query_params[k] = v
        at.run()
        if page != "overview":
            at.switch_page(f"views/{page}.py").run()
        return at

    yield _open
