"""`cms detect score`: NAB CSV in, NAB CSV with anomaly_score out; checkpoints; clear errors."""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cms_dagster.detect import score_series
from cms_dagster.detect.cli import main, register, score_csv

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def nab_csv(fixture_nab_dir: Path) -> Path:
    return fixture_nab_dir / "data" / "synthetic" / "spike_and_shift.csv"


def cms(argv: list[str]) -> int:
    """The `cms` command as cms_dagster/cli.py builds it: a parser with this area's register()."""
    parser = argparse.ArgumentParser(prog="cms")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def read(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_scores_to_stdout_keeping_timestamp_and_value_text(nab_csv: Path, capsys) -> None:
    assert cms(["detect", "score", str(nab_csv)]) == 0
    rows = read(capsys.readouterr().out)
    source = read(nab_csv.read_text())
    assert rows[0] == ["timestamp", "value", "anomaly_score"]
    assert len(rows) == len(source)
    assert [r[:2] for r in rows[1:]] == source[1:]
    scores = [float(r[2]) for r in rows[1:]]
    assert all(0 <= s <= 1 for s in scores)
    assert max(scores) == scores[700]  # the fixture's spike


def test_output_file_and_details_columns(nab_csv: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "scored.csv"
    assert cms(["detect", "score", str(nab_csv), "-o", str(out), "--details"]) == 0
    assert capsys.readouterr().out == ""
    df = pd.read_csv(out)
    assert list(df.columns) == ["timestamp", "value", "anomaly_score", "kind", "baseline"]
    assert df.loc[700, "kind"] == "spike"
    assert set(df["kind"]) <= {"spike", "dip", "level_shift", "drift", "none"}


def test_cli_scores_are_exactly_the_library_scores(nab_csv: Path, capsys) -> None:
    cms(["detect", "score", str(nab_csv)])
    cli_scores = np.array([float(r[2]) for r in read(capsys.readouterr().out)[1:]])
    df = pd.read_csv(nab_csv)
    frame, _ = score_series(df["timestamp"], df["value"])
    assert np.array_equal(cli_scores, frame.anomaly_score)


def test_hourly_runs_with_checkpoints_equal_one_run(nab_csv: Path, tmp_path: Path) -> None:
    lines = nab_csv.read_text().splitlines()
    header, body = lines[0], lines[1:]
    whole = tmp_path / "whole.csv"
    assert cms(["detect", "score", str(nab_csv), "-o", str(whole)]) == 0
    pieces = []
    previous = None
    for n, start in enumerate(range(0, len(body), 12 * 8)):  # partitions of 8 hours
        part = tmp_path / f"part{n}.csv"
        part.write_text("\n".join([header, *body[start : start + 96]]) + "\n")
        out = tmp_path / f"scored{n}.csv"
        ckpt = tmp_path / f"state{n}.json"
        argv = ["detect", "score", str(part), "-o", str(out), "--checkpoint-out", str(ckpt)]
        if previous:
            argv += ["--checkpoint-in", str(previous)]
        assert cms(argv) == 0
        pieces.append(read(out.read_text())[1:])
        previous = ckpt
    joined = [row for piece in pieces for row in piece]
    assert joined == read(whole.read_text())[1:]


@pytest.mark.slow
def test_benchmark_function_and_subprocess_cli_give_identical_output(nab_csv: Path) -> None:
    buf = io.StringIO()
    score_csv(nab_csv, buf)
    proc = subprocess.run(
        [sys.executable, "-m", "cms_dagster.detect.cli", "score", str(nab_csv)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    assert proc.stdout == buf.getvalue()


def test_missing_column_is_a_clear_error(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time,value\n2026-11-20 14:00:00,1\n")
    assert cms(["detect", "score", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "lacks column(s) timestamp" in err and "timestamp,value" in err


def test_nan_row_is_named_by_its_csv_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "nan.csv"
    bad.write_text("timestamp,value\n2026-11-20 14:00:00,1\n2026-11-20 14:05:00,NaN\n")
    assert cms(["detect", "score", str(bad)]) == 1
    assert "line 3: value is 'NaN', not a finite number" in capsys.readouterr().err


def test_empty_value_and_short_row_are_named(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "empty.csv"
    bad.write_text("timestamp,value\n2026-11-20 14:00:00,\n")
    assert cms(["detect", "score", str(bad)]) == 1
    assert "line 2: value is empty" in capsys.readouterr().err
    short = tmp_path / "short.csv"
    short.write_text("timestamp,value\n2026-11-20 14:00:00\n")
    assert cms(["detect", "score", str(short)]) == 1
    assert "line 2: 1 field(s)" in capsys.readouterr().err


def test_a_late_row_is_scored_in_arrival_order_unless_refused(tmp_path: Path, capsys) -> None:
    f = tmp_path / "order.csv"
    f.write_text(
        "timestamp,value\n2026-11-20 14:05:00,1\n2026-11-20 14:10:00,2\n2026-11-20 14:00:00,3\n"
        "2026-11-20 14:15:00,4\n"
    )
    assert cms(["detect", "score", str(f)]) == 0
    rows = read(capsys.readouterr().out)
    assert [r[0] for r in rows[1:]] == ["2026-11-20 14:05:00", "2026-11-20 14:10:00", "2026-11-20 14:00:00",
                                        "2026-11-20 14:15:00"]  # every row scored, none reordered
    assert all(r[2] for r in rows[1:])
    assert cms(["detect", "score", str(f), "--late", "error"]) == 1
    err = capsys.readouterr().err
    assert "line 4" in err and "--late score" in err


def test_help_says_what_happens_to_a_late_row(capsys) -> None:
    with pytest.raises(SystemExit):
        cms(["detect", "score", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "late row" in text and "at the latest time read so far" in text


def test_unsorted_and_duplicate_rows(tmp_path: Path, capsys) -> None:
    f = tmp_path / "order.csv"
    f.write_text("timestamp,value\n2026-11-20 14:00:00,1\n2026-11-20 14:00:00,2\n")
    assert cms(["detect", "score", str(f)]) == 1
    assert "--duplicates keep" in capsys.readouterr().err
    assert cms(["detect", "score", str(f), "--duplicates", "keep"]) == 0
    assert len(read(capsys.readouterr().out)) == 3


def test_missing_file_and_bad_checkpoint(tmp_path: Path, nab_csv: Path, capsys) -> None:
    assert cms(["detect", "score", str(tmp_path / "nope.csv")]) == 1
    assert "does not exist" in capsys.readouterr().err
    junk = tmp_path / "junk.json"
    junk.write_text("garbage")
    assert cms(["detect", "score", str(nab_csv), "--checkpoint-in", str(junk)]) == 1
    assert "not valid JSON" in capsys.readouterr().err


def test_help_teaches_with_an_example(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    out = capsys.readouterr().out
    assert "cms detect score cpu.csv -o cpu_scored.csv" in out
    assert "--checkpoint-in" in out and "--details" in out
