"""Fixtures for the infrastructure tests: parsed templates, a clean fake AWS environment, the CLI."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cms_dagster.infra.cli import register
from cms_dagster.infra.templates import STACKS, load_template, template_path, templates_dir

AWS_ENV_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_CLOUDWATCH",
    "AWS_ENDPOINT_URL_S3",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "CMS_PUBLISH_RUN_METRICS",
    "CMS_ENVIRONMENT",
)


@pytest.fixture(scope="session")
def templates() -> dict[str, dict[str, Any]]:
    """Stack key -> the template as CloudFormation reads it (short tags in their long form)."""
    return {spec.key: load_template(template_path(spec)) for spec in STACKS}


@pytest.fixture(scope="session")
def template_dir() -> Path:
    return templates_dir()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials, one region, nothing pointing at a real account."""
    for name in AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("CMS_HOME", str(tmp_path / "cms-home"))


@pytest.fixture
def cms() -> Callable[..., int]:
    """Run `cms infra ...` through the same argparse wiring as the `cms` command; returns the exit code."""

    def run(*argv: str) -> int:
        parser = argparse.ArgumentParser(prog="cms")
        register(parser.add_subparsers(dest="command"))
        args = parser.parse_args(list(argv))
        return int(args.func(args))

    return run


@pytest.fixture
def moto_server() -> Iterator[str]:
    """A moto server on a free port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
