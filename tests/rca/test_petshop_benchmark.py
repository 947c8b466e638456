"""benchmarks/petshop.py runs end to end on a small dataset in PetShop's layout made here (never on the
shared PetShop data)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.benchmark_modules import benchmark_module

NODES = ["Front", "Api", "Db", "Cache"]
CALLS = {("Front", "Api"), ("Api", "Db"), ("Api", "Cache")}  # caller, callee


@pytest.fixture
def bench():
    with benchmark_module("petshop") as module:
        yield module


def _write_wide(path: Path, times: np.ndarray, latency: dict[str, np.ndarray]) -> None:
    """PetShop's wide layout: component / metric / statistic header rows, an index-name row, then data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([""] + NODES + ["Front"])
        w.writerow([""] + ["latency"] * len(NODES) + ["requests"])
        w.writerow([""] + ["Average"] * len(NODES) + ["Sum"])
        w.writerow(["unix_timestamp"] + [""] * (len(NODES) + 1))
        for i, t in enumerate(times):
            # one empty cell (Cache's first row) is left out, as the real files' gaps are
            cells = ["" if (n == "Cache" and i == 0) else f"{latency[n][i]:.4f}" for n in NODES]
            w.writerow([int(t)] + cells + ["100"])


def make_dataset(root: Path, faulty: str) -> None:
    """One scenario: 60 normal rows, then an issue whose `faulty` node's latency jumps from its third row on
    and reaches its callers, which jump less."""
    rng = np.random.default_rng(7)
    sc = root / "low_traffic"
    sc.mkdir(parents=True)
    with open(sc / "graph.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([""] + NODES)
        for r in NODES:
            w.writerow([r] + [int((r, c) in CALLS) for c in NODES])
    normal_t = 1_690_000_000 + 300 * np.arange(60)
    _write_wide(sc / "noissue" / "metrics.csv", normal_t,
                {n: 10 + rng.normal(0, 1, 60) for n in NODES})
    issue_t = 1_680_000_000 + 300 * np.arange(5)
    lat = {n: 10 + rng.normal(0, 1, 5) for n in NODES}
    lat[faulty][2:] += 40
    for caller in ("Api", "Front"):
        lat[caller][2:] += 8
    d = sc / "train" / "issue_0"
    _write_wide(d / "metrics.csv", issue_t, lat)
    target = {"target": {"node": "Front", "metric": "latency", "agg": "Average", "timestamp": int(issue_t[1]) + 60},
              "root_cause": {"node": faulty, "metric": None}}
    (d / "target.json").write_text(json.dumps(target))


def test_benchmark_prints_cms_beside_the_baselines_per_scenario_and_target(bench, tmp_path, capsys) -> None:
    make_dataset(tmp_path / "dataset", faulty="Db")
    out_json = tmp_path / "cases.json"
    assert bench.main(["--petshop-dir", str(tmp_path), "--jobs", "1", "--json-out", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "1 cases in 1 scenarios" in out
    for label in ("low_traffic", "target latency_Average", "all"):
        line = next(x for x in out.splitlines() if x.startswith(label + " ") and " n=" in x)
        assert "cms" in line and "max|z|" in line and "random" in line
    (case,) = json.loads(out_json.read_text())
    assert case["error"] is None
    assert case["rank"]["cms"] == 1  # Db moved most and first; its callers are explained by it
    assert case["hits"]["random"]["1"] == pytest.approx(0.25)


def test_benchmark_start_is_the_first_row_at_or_after_the_target_time(bench, tmp_path) -> None:
    make_dataset(tmp_path, faulty="Cache")
    (case,) = bench.load_cases(tmp_path, ["low_traffic"])
    assert case.start == 1_680_000_000 + 600  # row 2; rows 0 and 1 join the history
    history = case.metrics[case.metrics["time"] < case.start]
    assert history["time"].max() == 1_680_000_300  # the normal recording ends one step before the issue
    assert len(history[history["time"] < 1_680_000_000]) == 60 * 5 - 1  # 60 rows x 5 series, less the empty cell
    assert ("Api", "Cache") in case.edges and ("Cache", "Api") not in case.edges


def test_benchmark_explains_a_missing_dataset(bench, tmp_path, capsys) -> None:
    assert bench.main(["--petshop-dir", str(tmp_path), "--jobs", "1"]) == 1
    assert "set CMS_PETSHOP_DIR" in capsys.readouterr().err


@pytest.mark.slow
def test_injection_benchmark_ranks_a_fault_at_every_component_of_the_normal_recording(tmp_path, capsys) -> None:
    try:
        with benchmark_module("petshop_inject") as module:
            make_dataset(tmp_path / "dataset", faulty="Db")
            assert module.main(["--petshop-dir", str(tmp_path), "--scenario", "low_traffic", "--null", "2"]) == 0
    finally:
        sys.modules.pop("petshop", None)  # the script imports its sibling benchmarks/petshop.py by name
    out = capsys.readouterr().out
    assert "4 components x 2 faults" in out  # Front, Api, Db and Cache all report latency
    assert "8 injected faults" in out
    for label in ("low_traffic latency", "low_traffic availability", "all"):
        line = next(x for x in out.splitlines() if x.startswith(label + " "))
        assert " cms " in line and "max|z|" in line and "random" in line
    assert module.callers_of(sorted(CALLS), "Db") == {"Api", "Front"}
    for history in ("full", "2 points"):
        line = next(x for x in out.splitlines() if x.startswith(f"low_traffic, {history} of history"))
        assert "Db first: cms " in line and "anomalous nodes median" in line
