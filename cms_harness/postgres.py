"""A real PostgreSQL server for tests and benchmarks: Debian's `postgresql` binaries (installed by
`make test`), a throw-away cluster in a temporary directory, a free TCP port, password authentication."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@dataclass
class PostgresServer:
    root: Path
    port: int
    user: str = "cms"
    password: str = "cms-test-password"

    def url(self, db: str) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{db}"

    def psql(self, sql: str, db: str = "postgres") -> str:
        out = subprocess.run(
            [str(pg_bin() / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", db, "-Atc", sql],
            capture_output=True, text=True, check=True, env={**os.environ, "PGPASSWORD": self.password},
        )
        return out.stdout.strip()

    def create_database(self, name: str) -> str:
        self.psql(f'create database "{name}"')
        return name


def start(root: Path) -> PostgresServer:
    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install -y postgresql (make test does it)")
    data, sock = root / "data", root / "sock"
    for d in (root, data, sock):
        d.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        for d in (data, sock):
            shutil.chown(d, "postgres")
    server = PostgresServer(root=root, port=_free_port())
    pwfile = root / "pw"
    pwfile.write_text(server.password)
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres")
    subprocess.run(
        _as_postgres([str(bindir / "initdb"), "-D", str(data), "-A", "scram-sha-256", "-U", server.user, f"--pwfile={pwfile}"]),
        check=True, capture_output=True,
    )
    opts = f"-p {server.port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
    subprocess.run(
        _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"]),
        check=True, capture_output=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if subprocess.run([str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(server.port)], capture_output=True).returncode == 0:
            return server
        time.sleep(0.2)
    raise RuntimeError(f"PostgreSQL did not start: {(root / 'log').read_text()[-2000:]}")


def stop(server: PostgresServer) -> None:
    subprocess.run(
        _as_postgres([str(pg_bin() / "pg_ctl"), "-D", str(server.root / "data"), "-m", "immediate", "stop"]),
        capture_output=True,
    )
