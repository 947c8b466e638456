"""``cms rca rank``: the text table, the JSON document and the errors a user sees."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rca_synth import START as DOMAIN_START
from rca_synth import make_incident

from cms_dagster.rca.cli import register

ESTATE = Path(__file__).resolve().parents[2] / "cms_dagster" / "domain" / "estate.yaml"
START = "2026-11-27T12:00:00Z"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cms")
    register(p.add_subparsers(dest="command"))
    return p


def run(argv: list[str]) -> tuple[int, str, str]:
    args = parser().parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    code = args.func(args, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    times = pd.date_range("2026-11-27T08:00:00Z", periods=300, freq="min")
    rows = []
    for node, level, factor, delay in (
        ("web", 200, 2.0, 3),
        ("api", 100, 3.0, 2),
        ("db", 10, 4.0, 0),
        ("cache", 50, 1.0, 0),
    ):
        v = level * (1 + 0.02 * rng.standard_normal(len(times)))
        v[240 + delay :] *= factor
        rows.append(
            pd.DataFrame(
                {
                    "time": times.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "node": node,
                    "metric": "latency_ms",
                    "value": v,
                }
            )
        )
    metrics = tmp_path / "metrics.csv"
    pd.concat(rows).to_csv(metrics, index=False)
    graph = tmp_path / "graph.csv"
    graph.write_text("source,target\nweb,api\napi,db\napi,cache\n")
    return metrics, graph


def test_text_table(files: tuple[Path, Path]) -> None:
    metrics, graph = files
    code, out, err = run(["rca", "rank", "--metrics", str(metrics), "--graph", str(graph), "--start", START])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Root-cause candidates for the incident from 2026-11-27T12:00:00Z"
    assert lines[1].split() == ["rank", "node", "score", "onset", "top", "evidence"]
    first = lines[2].split()
    assert first[:2] == ["1", "db"]
    assert "latency_ms moved at 2026-11-27T12:0" in lines[2]
    assert "(z +" in lines[2]
    assert "explains: api, web" in out
    assert "not anomalous" in out  # the cache is listed, but says it did not move


def test_json_document(files: tuple[Path, Path]) -> None:
    metrics, graph = files
    code, out, _ = run(
        [
            "rca",
            "rank",
            "--metrics",
            str(metrics),
            "--graph",
            str(graph),
            "--start",
            START,
            "--json",
            "--top",
            "2",
        ]
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["start"] == START and doc["target"] is None
    assert [c["node"] for c in doc["candidates"]] == ["db", "api"]
    ev = doc["candidates"][0]["evidence"][0]
    assert set(ev) == {"node", "metric", "moved_at", "peak_at", "baseline", "observed", "z", "direction"}
    assert ev["metric"] == "latency_ms" and ev["direction"] == "up" and ev["z"] > 10
    assert ev["observed"] / ev["baseline"] == pytest.approx(4.0, rel=0.1)


def test_a_history_too_short_for_the_models_is_said_in_every_output(files: tuple[Path, Path], tmp_path: Path) -> None:
    metrics, graph = files
    frame = pd.read_csv(metrics)
    short = tmp_path / "short.csv"
    frame[frame["time"] >= "2026-11-27T11:58:00Z"].to_csv(short, index=False)  # 2 points before the start
    argv = ["rca", "rank", "--metrics", str(short), "--graph", str(graph), "--start", START]
    code, out, err = run(argv)
    assert code == 0
    assert "history before start is too short" in err and "standardised deviation" in err
    assert out.splitlines()[1].startswith("ranked by standardised deviation alone")
    code, out, _ = run([*argv, "--json"])
    doc = json.loads(out)
    assert code == 0 and doc["candidates"][0]["method"] == "standardised deviation"
    scores = [c["score"] for c in doc["candidates"]]
    assert scores == sorted(scores, reverse=True) and not any(c["anomalous"] for c in doc["candidates"])
    assert {c["node"] for c in doc["candidates"]} == {"web", "api", "db", "cache"}


def test_target(files: tuple[Path, Path]) -> None:
    metrics, graph = files
    code, out, _ = run(
        [
            "rca",
            "rank",
            "--metrics",
            str(metrics),
            "--graph",
            str(graph),
            "--start",
            START,
            "--target",
            "api",
            "--json",
        ]
    )
    assert code == 0
    assert {c["node"] for c in json.loads(out)["candidates"]} == {"api", "db", "cache"}


def test_bad_csv_points_at_the_line(files: tuple[Path, Path], tmp_path: Path) -> None:
    metrics, graph = files
    frame = pd.read_csv(metrics)
    frame.loc[5, "value"] = np.nan  # data row 5 is line 7 of the file (line 1 is the header)
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    code, out, err = run(["rca", "rank", "--metrics", str(bad), "--graph", str(graph), "--start", START])
    assert code == 2 and out == ""
    assert err.startswith("error: column 'value' has NaN at line 7")


def test_missing_columns_and_files(files: tuple[Path, Path], tmp_path: Path) -> None:
    metrics, graph = files
    headless = tmp_path / "m.csv"
    pd.read_csv(metrics).drop(columns=["metric"]).to_csv(headless, index=False)
    code, _, err = run(["rca", "rank", "--metrics", str(headless), "--graph", str(graph), "--start", START])
    assert code == 2 and "missing column(s) metric" in err
    code, _, err = run(
        ["rca", "rank", "--metrics", str(tmp_path / "nope.csv"), "--graph", str(graph), "--start", START]
    )
    assert code == 2 and "does not exist" in err
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    code, _, err = run(["rca", "rank", "--metrics", str(empty), "--graph", str(graph), "--start", START])
    assert code == 2 and "is empty" in err


def test_unsorted_csv_names_the_series(files: tuple[Path, Path], tmp_path: Path) -> None:
    metrics, graph = files
    frame = pd.read_csv(metrics)
    frame.iloc[[10, 11]] = frame.iloc[[11, 10]].to_numpy()
    shuffled = tmp_path / "shuffled.csv"
    frame.to_csv(shuffled, index=False)
    code, _, err = run(["rca", "rank", "--metrics", str(shuffled), "--graph", str(graph), "--start", START])
    assert code == 2
    assert "times go backwards within series node='web' metric='latency_ms' (first at lines 12, 13)" in err


def test_warning_for_graph_nodes_without_metrics(files: tuple[Path, Path], tmp_path: Path) -> None:
    metrics, _ = files
    graph = tmp_path / "g.csv"
    graph.write_text("source,target\nweb,api\napi,db\napi,queue\n")
    code, _, err = run(["rca", "rank", "--metrics", str(metrics), "--graph", str(graph), "--start", START])
    assert code == 0
    assert err.startswith("warning: graph names 1 node(s) without metrics (queue)")


@pytest.mark.slow
def test_ontology_mode_ranks_entity_and_kind(tmp_path: Path) -> None:
    metrics = make_incident("connection_pool_exhaustion", "rds:risk-db", seed=3)
    path = tmp_path / "series.csv"
    metrics.assign(time=metrics["time"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")).to_csv(path, index=False)
    start = DOMAIN_START.isoformat()
    code, out, err = run(
        ["rca", "rank", "--metrics", str(path), "--ontology", str(ESTATE), "--start", start, "--top", "3"]
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].split()[:4] == ["rank", "entity", "kind", "score"]
    assert lines[2].split()[:3] == ["1", "rds:risk-db", "connection_pool_exhaustion"]
    code, out, _ = run(
        [
            "rca",
            "rank",
            "--metrics",
            str(path),
            "--ontology",
            str(ESTATE),
            "--start",
            start,
            "--json",
            "--top",
            "1",
        ]
    )
    (top,) = json.loads(out)["hypotheses"]
    assert (top["entity"], top["kind"]) == ("rds:risk-db", "connection_pool_exhaustion")
    assert top["evidence"][0]["metric"] == "conn_ratio"


def test_help_teaches_with_an_example() -> None:
    help_text = (
        parser()
        ._subparsers._group_actions[0]
        .choices["rca"]
        ._subparsers._group_actions[0]
        .choices["rank"]
        .format_help()
    )
    assert "source depends on target" in help_text
    assert "cms rca rank --metrics incident.csv --graph deps.csv --start 2026-11-27T10:00:00Z" in help_text


def test_graph_and_ontology_are_mutually_exclusive(files: tuple[Path, Path]) -> None:
    metrics, graph = files
    with pytest.raises(SystemExit):
        parser().parse_args(
            [
                "rca",
                "rank",
                "--metrics",
                str(metrics),
                "--graph",
                str(graph),
                "--ontology",
                str(ESTATE),
                "--start",
                START,
            ]
        )


def test_a_cyclic_graph_is_ranked_with_a_warning_naming_the_cycle(files: tuple[Path, Path], tmp_path: Path) -> None:
    metrics, _ = files
    cyclic = tmp_path / "cyclic.csv"
    cyclic.write_text("source,target\nweb,api\napi,db\ndb,db\n")
    code, out, err = run(["rca", "rank", "--metrics", str(metrics), "--graph", str(cyclic), "--start", START])
    assert code == 0 and "db" in out
    assert "warning: the graph has a cycle (db -> db)" in err
    _, _, clean = run(["rca", "rank", "--metrics", str(metrics), "--graph", str(files[1]), "--start", START])
    assert "cycle" not in clean
