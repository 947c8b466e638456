"""Bad input to the `cms` commands gives one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cms_dagster.cli import main

ESTATE = Path(__file__).resolve().parents[2] / "cms_dagster" / "domain" / "estate.yaml"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse refusals
        code = int(e.code or 0)
    err = capsys.readouterr().err.strip()
    return code, err


def _one_clear_line(code: int, err: str) -> None:
    assert code != 0
    assert "Traceback" not in err and err
    assert len([x for x in err.splitlines() if not x.startswith(("usage:", " "))]) == 1, err  # usage + one error line


def _estate_with(tmp_path: Path, pattern: str, replacement: str) -> str:
    text, n = re.subn(pattern, replacement, ESTATE.read_text(), count=1)
    assert n == 1
    p = tmp_path / "estate.yaml"
    p.write_text(text)
    return str(p)


def test_detect_score_on_unreadable_input_says_what_is_wrong(cms_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00bad")
    code, err = _run(["detect", "score", str(binary)], capsys)
    _one_clear_line(code, err)
    assert "not UTF-8" in err
    code, err = _run(["detect", "score", str(tmp_path)], capsys)
    _one_clear_line(code, err)
    assert "is a directory" in err


@pytest.mark.parametrize(
    "argv, says",
    [
        (["simulate", "--start", "9999-12-31", "--days", "1"], "between 1971 and 2200"),
        (["simulate", "--seed", "1" * 30, "--days", "1"], "out of range"),
        (["simulate", "--days", "1", "--incident", "feed_outage@2026-11-16T05:45,minutes=-40"], "between 1 and 10080"),
        (["simulate", "--days", "1", "--incident", "feed_outage@2026-12-16T05:45"], "outside the simulated window"),
        (["detect", "alarms", "--since", "99999999d"], "before 1971"),
        (["rca", "incident", "--at", "2026-11-20T10:00"], "no warehouse"),
        (["rca", "rank", "--metrics", "x.csv", "--start", "2026-11-20T10:00", "--threshold", "nan"], "positive finite number"),
    ],
)
def test_bad_arguments_get_one_clear_line(cms_home: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str) -> None:
    code, err = _run(argv, capsys)
    _one_clear_line(code, err)
    assert says in err


def test_rca_incident_without_a_warehouse_leaves_none_behind(cms_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run(["rca", "incident", "--at", "2026-11-20T10:00"], capsys)
    assert not (cms_home / "warehouse.duckdb").exists()


@pytest.mark.parametrize(
    "pattern, replacement, says",
    [
        (r"(minutes: )8\}", r"\1eight}", "is not a number"),
        (r"(minutes: )8\}", r"\1.nan}", "not a finite number"),
        (r"(sla_minutes: )[0-9]+", r"\g<1>-75", "must be more than 0"),
        (r"(records: )[0-9]+", r"\g<1>1e400", "is not a number"),
    ],
)
def test_domain_validate_names_the_bad_number(tmp_path: Path, capsys: pytest.CaptureFixture[str], pattern: str, replacement: str, says: str) -> None:
    code, err = _run(["domain", "validate", _estate_with(tmp_path, pattern, replacement)], capsys)
    _one_clear_line(code, err)
    assert "jobs[" in err and says in err


def test_domain_validate_on_a_binary_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "estate.yaml"
    p.write_bytes(b"\xff\xfe\x00\x01binary")
    code, err = _run(["domain", "validate", str(p)], capsys)
    _one_clear_line(code, err)
    assert "not UTF-8" in err
