"""`cms --help` teaches: every area's subcommands load and each has help with an example."""

import pytest

from cms_dagster.cli import build_parser, main

COMMANDS = ["config", "simulate", "domain", "demo", "collect", "ingest", "snowflake", "dbt", "detect", "rca", "infra"]


def test_every_area_registers_its_subcommands(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in COMMANDS:
        assert f"\n    {cmd}" in out, cmd
    assert "make demo" in out


@pytest.mark.parametrize("cmd", ["simulate", "demo", "collect", "detect score", "rca rank", "infra deploy", "snowflake setup", "ingest serve"])
def test_subcommand_help_has_an_example(cmd: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([*cmd.split(), "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out.lower(), out


def test_bad_incident_spec_is_explained(cms_home, capsys: pytest.CaptureFixture) -> None:
    assert main(["simulate", "--days", "1", "--incident", "meteor_strike@2026-11-16T10:00"]) == 2
    err = capsys.readouterr().err
    assert "unknown kind 'meteor_strike'" in err and "feed_outage" in err
    assert main(["simulate", "--days", "1", "--incident", "feed_outage@2026-11-16T10:00,entity=rds:orders-db"]) == 2
    assert "cannot start at 'rds:orders-db'" in capsys.readouterr().err
