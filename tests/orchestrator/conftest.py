"""A PostgreSQL server for the whole session (started once, a database per test)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cms_harness import postgres as postgres_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[postgres_server.PostgresServer]:
    if postgres_server.pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is missing on CI: `make test` installs Debian's postgresql")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    # not under pytest's own temp dir: that one is private to this user, and the server runs as postgres
    root = Path(tempfile.mkdtemp(prefix="cms-pg-"))
    os.chmod(root, 0o755)
    server = postgres_server.start(root)
    try:
        yield server
    finally:
        postgres_server.stop(server)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_db(postgres: postgres_server.PostgresServer) -> str:
    return postgres.create_database(f"dagster_{uuid.uuid4().hex[:10]}")
