"""Readers that never wait for a writer, on the embedded DuckDB warehouse.

DuckDB lets one process write a database file and no other process open it meanwhile, not even read-only
("Conflicting lock is held"). A dbt build holds that lock for minutes, so every write CMS makes (loading
points, dbt, detection results) ends by *publishing* a read-only copy of the warehouse:

    <dir>/<name>.snapshot/<name>.duckdb       e.g. .cms/warehouse.snapshot/warehouse.duckdb

The writer checkpoints (the file then holds every committed change and the write-ahead log is empty),
copies the file to a temporary name while it still holds the write lock (so no other process changes it
mid-copy), then renames the copy over the published one: a reader sees the old snapshot or the new one,
never half of either, and a reader that opened the old one keeps reading it (POSIX keeps a replaced file
alive while it is open). The snapshot keeps the database's file name, so views that name their catalog
(``"warehouse"."marts"...``, as dbt-duckdb writes them) resolve in the copy too.

Readers (:func:`open_reader`) read the snapshot, through one attachment per process kept open until the
snapshot is replaced (opening a large file for every query costs tens of milliseconds and a cold cache). Only when the live file changed after the last publication
(a write made outside CMS, a test that edits the file) do they try the live file, once, without waiting;
if a writer holds it they read the snapshot. Snowflake needs none of this: it serves readers itself.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import duckdb

SNAPSHOT_SUFFIX = ".snapshot"


def snapshot_path(db: Path) -> Path:
    """Where the read-only copy of the DuckDB file ``db`` is published."""
    db = Path(db)
    return db.parent / f"{db.stem}{SNAPSHOT_SUFFIX}" / db.name


def _mtime_ns(p: Path) -> int:
    try:
        return p.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def live_changed_since_publication(db: Path) -> bool:
    """True when the live file (or its write-ahead log) was written after the snapshot was published."""
    db = Path(db)
    published = _mtime_ns(snapshot_path(db))
    return max(_mtime_ns(db), _mtime_ns(db.with_name(db.name + ".wal"))) > published


def publish(con: duckdb.DuckDBPyConnection, db: Path) -> Path:
    """Publish the DuckDB file ``db`` as the readers' snapshot. ``con`` is an open *write* connection to it,
    with no transaction in progress: holding it keeps other processes from writing during the copy."""
    db = Path(db)
    con.execute("CHECKPOINT")
    target = snapshot_path(db)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(db, tmp)
    os.replace(tmp, target)
    return target


def publish_file(db: Path, retries: int = 60) -> Path | None:
    """Open ``db`` for writing (waiting for another writer to finish) and publish it; None if it does not exist.
    For writers that run in another process (dbt): call it once they have exited."""
    from cms_dagster.warehouse.duckdb_load import connect

    db = Path(db)
    if not db.exists():
        return None
    con = connect(db, retries=retries)
    try:
        return publish(con, db)
    finally:
        con.close()


class WarehouseBusyError(RuntimeError):
    """The live warehouse is locked by a writer and no snapshot has been published yet."""


def open_reader(db: Path, retries: int = 30, *, private: bool = False) -> duckdb.DuckDBPyConnection:
    """A read-only connection that never waits for a writer once a snapshot exists (see the module doc).

    ``private=True``: a connection of its own instead of a cursor on the process's shared attachment, for a
    caller that changes its settings (`cms ask` turns off external access and locks the configuration,
    which on a shared attachment would hold for every later reader of the process)."""
    db = Path(db)
    snap = snapshot_path(db)
    if not snap.exists() and not db.exists():
        return _read_only(None)  # no warehouse yet: queries fail as on an empty one ("table ... does not exist")
    if snap.exists():
        if live_changed_since_publication(db):
            try:
                return _read_only(db)
            except duckdb.IOException as e:
                if "lock" not in str(e).lower():
                    raise
        return _private_snapshot_reader(snap) if private else _snapshot_reader(snap)
    # nothing published yet: the live file, waiting a little for a writer as before
    for i in range(retries):
        try:
            return _read_only(db)
        except duckdb.IOException as e:
            if "lock" not in str(e).lower():
                raise
            if i == retries - 1:
                raise WarehouseBusyError(
                    f"{db} is locked by a writer and has no published snapshot yet; retry when the build ends"
                ) from None
            time.sleep(min(2.0, 0.1 * (i + 1)))
    raise RuntimeError("unreachable")


# One open read-only attachment of each published snapshot per process, handed out as cursors: opening a
# large DuckDB file reads its catalog (tens of ms each time) and starts with a cold buffer cache, and a
# snapshot never changes in place (a new one replaces it by rename), so an open one stays right until then.
# Each attachment lives in its own in-memory database (DuckDB would hand a second connect() to the same
# path the instance already open, i.e. the replaced snapshot); a replaced one is dropped, and freed once
# its last cursor is closed.
_SNAPSHOTS: dict[Path, tuple[tuple[int, int, int], duckdb.DuckDBPyConnection]] = {}
_SNAPSHOTS_LOCK = threading.Lock()
_MAX_SNAPSHOTS = 4


def _snapshot_reader(snap: Path) -> duckdb.DuckDBPyConnection:
    """A cursor on the process's open attachment of the published snapshot ``snap`` (reopened once replaced)."""
    st = snap.stat()
    key = (st.st_ino, st.st_mtime_ns, st.st_size)
    catalog = snap.stem
    with _SNAPSHOTS_LOCK:
        held = _SNAPSHOTS.get(snap)
        if held is None or held[0] != key:
            base = duckdb.connect(":memory:")
            escaped = str(snap).replace("'", "''")
            base.execute(f"""attach '{escaped}' as "{catalog}" (read_only)""")
            held = (key, base)
            _SNAPSHOTS.pop(snap, None)
            _SNAPSHOTS[snap] = held
            while len(_SNAPSHOTS) > _MAX_SNAPSHOTS:  # the least recently opened warehouse goes
                _SNAPSHOTS.pop(next(iter(_SNAPSHOTS)))
        cur = held[1].cursor()
    cur.execute(f'use "{catalog}"')
    cur.execute("SET TimeZone='UTC'")
    return cur


def _private_snapshot_reader(snap: Path) -> duckdb.DuckDBPyConnection:
    """A connection of its own on the published snapshot ``snap`` (an in-memory database attaching it read-only,
    as :func:`_snapshot_reader` does, so a replaced snapshot is never handed out from DuckDB's instance cache)."""
    con = duckdb.connect(":memory:")
    escaped = str(snap).replace("'", "''")
    con.execute(f"""attach '{escaped}' as "{snap.stem}" (read_only)""")
    con.execute(f'use "{snap.stem}"')
    con.execute("SET TimeZone='UTC'")
    return con


def _read_only(path: Path | None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:") if path is None else duckdb.connect(str(path), read_only=True)
    con.execute("SET TimeZone='UTC'")
    return con
