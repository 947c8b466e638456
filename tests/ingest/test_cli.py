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

    monkeypatch.delenv(server._WORKER_CONFIG_ENV, raising=False)
    with pytest.raises(RuntimeError, match="--workers"):
        server.worker_app()
    cfg = IngestConfig(raw_url=str(tmp_path), api_keys={"k-0123456789": "t"}, services={"t": ("svc-*",)}, flush_ms=7)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(dataclasses.asdict(cfg)))
    monkeypatch.setenv(server._WORKER_CONFIG_ENV, str(path))
    app = server.worker_app()
    assert app.state.receiver.config == cfg


@pytest.mark.slow
def test_worker_processes_never_hold_the_keys_in_their_environment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import http.client
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    secret = "k-file-only-secret-0123456789"
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"markets:\n  keys: [{secret}]\n  services: [pricing-*]\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMS_INGEST")}
    env.update(CMS_INGEST_API_KEYS_FILE=str(keys), CMS_RAW_URL=str(tmp_path / "raw"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cms_dagster.ingest", "serve", "--port", str(port), "--workers", "2", "--log-level", "warning"],
        env=env, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "receiver did not start"
            time.sleep(0.2)
        family = [proc.pid] + [
            int(p.name) for p in Path("/proc").iterdir()
            if p.name.isdigit() and _ppid(p) == proc.pid
        ]
        assert len(family) >= 3  # the parent and its two workers
        for pid in family:
            assert secret.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
        config_file = Path(_environ(family[1])["_CMS_INGEST_WORKER_CONFIG"])
        assert config_file.stat().st_mode & 0o077 == 0  # readable by this user only
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    assert not config_file.exists()  # removed when the receiver stops


def _ppid(p) -> int:  # type: ignore[no-untyped-def]
    try:
        return int(p.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _environ(pid: int) -> dict[str, str]:
    from pathlib import Path

    items = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(i.decode(errors="replace").split("=", 1) for i in items if b"=" in i)
