"""`cms ingest`: the subcommands, their help, and a clear refusal without API keys."""

from __future__ import annotations

import argparse

import pytest

from cms_dagster.ingest import cli


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cms")
    cli.register(p.add_subparsers(dest="command"))
    return p


def test_serve_options_and_defaults() -> None:
    args = parser().parse_args(["ingest", "serve", "--port", "5000", "--max-body-mb", "4", "--flush-ms", "50"])
    assert (args.host, args.port, args.max_body_mb, args.flush_ms) == ("127.0.0.1", 5000, 4.0, 50)
    assert args.func is cli.cmd_serve
    assert parser().parse_args(["ingest", "serve"]).port == 4318


def test_serve_help_teaches_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["ingest", "serve", "--help"])
    out = capsys.readouterr().out
    assert "CMS_INGEST_API_KEYS=" in out and "OTEL_EXPORTER_OTLP_ENDPOINT" in out and "/health" in out


def test_serve_without_api_keys_refuses_to_start(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CMS_INGEST_API_KEYS", raising=False)
    monkeypatch.delenv("CMS_INGEST_API_KEYS_FILE", raising=False)
    args = parser().parse_args(["ingest", "serve"])
    assert args.func(args) == 2
    assert "no API keys configured" in capsys.readouterr().err


def test_serve_with_a_broken_keys_file_says_what_is_wrong(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CMS_INGEST_API_KEYS_FILE", str(tmp_path / "missing.yaml"))
    args = parser().parse_args(["ingest", "serve"])
    assert args.func(args) == 2
    assert "does not exist" in capsys.readouterr().err


def test_new_key_prints_a_yaml_line(capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(["ingest", "new-key", "fx-feeds"])
    assert args.func(args) == 0
    team, key = capsys.readouterr().out.strip().split(": ")
    assert team == "fx-feeds" and len(key) >= 24


def test_worker_processes_get_their_configuration_from_the_parent(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import dataclasses
    import json

    from cms_dagster.ingest import server
    from cms_dagster.ingest.app import IngestConfig

    with pytest.raises(RuntimeError, match="--workers"):
        server.worker_app()
    cfg = IngestConfig(raw_url=str(tmp_path), api_keys={"k-0123456789": "t"}, flush_ms=7)
    monkeypatch.setenv(server._WORKER_CONFIG_ENV, json.dumps(dataclasses.asdict(cfg)))
    app = server.worker_app()
    assert app.state.receiver.config == cfg
