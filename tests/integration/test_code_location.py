"""The code location loads, in process and through Dagster's own CLI, and shows the chain's lineage."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_load_with_the_chain_in_lineage() -> None:
    from cms_dagster.definitions import defs

    d = defs()
    graph = d.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw/simulation", "raw/otel_metrics", "processed/points", "warehouse/metric_points"} <= keys
    assert (
        dg.AssetKey(["processed", "points"])
        in graph.get(dg.AssetKey(["warehouse", "metric_points"])).parent_keys
    )
    assert dg.AssetKey(["raw", "otel_metrics"]) in graph.get(dg.AssetKey(["processed", "points"])).parent_keys
    assert d.resolve_job_def("hourly_ingest") is not None


@pytest.mark.slow
def test_dagster_definitions_validate_passes(cms_home: Path) -> None:
    env = {**os.environ, "DO_NOT_TRACK": "1"}
    exe = Path(sys.executable).parent / "dagster"
    proc = subprocess.run(
        [str(exe), "definitions", "validate", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Validation successful" in proc.stdout + proc.stderr
