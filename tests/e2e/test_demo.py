"""`cms demo --no-serve` builds the whole product on the embedded default, and a second run is a no-op."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _recent_weekday() -> str:
    """A weekday (the estate's jobs run Monday to Friday) at least a day before today: the demo loads every hour
    from its start up to now, so a fixed start date would make this test longer every day."""
    day = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    while day.weekday() >= 5:
        day -= dt.timedelta(days=1)
    return day.isoformat()


START = _recent_weekday()


def _demo(cms_home: Path, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "cms"
    env = {**os.environ, "CMS_HOME": str(cms_home), "DAGSTER_HOME": str(cms_home / "dagster"), "DO_NOT_TRACK": "1"}
    return subprocess.run([str(exe), "demo", "--no-serve", "--days", "1", "--start", START, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
def test_demo_builds_every_asset_then_skips_when_run_again(cms_home: Path) -> None:
    first = _demo(cms_home)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    state = orjson.loads((cms_home / "demo-state.json").read_bytes())
    assert state["complete"] and all(p["success"] for p in state["phases"].values())
    assert "Where to look" in first.stdout and "http://127.0.0.1:3000" in first.stdout
    con = duckdb.connect(str(cms_home / "warehouse.duckdb"), read_only=True)
    try:
        points = con.execute("select count(*), count(distinct point_id) from raw.metric_points").fetchone()
        tables = {r[0] for r in con.execute("select table_schema || '.' || table_name from information_schema.tables").fetchall()}
        sdk_runs = con.execute("select count(*) from raw.metric_points where metric_name = 'cms.batch.run.finished' and asset_class = 'fx' and raw_key like '%-ingest-%'").fetchone()[0]
    finally:
        con.close()
    assert points[0] == points[1] > 200_000
    assert {"marts.fct_batch_runs", "marts.mart_sla_compliance", "intelligence.anomalies"} <= tables
    assert sdk_runs > 0  # fx runs went through the SDK and the receiver
    again = _demo(cms_home)
    assert again.returncode == 0 and "already built" in again.stdout
