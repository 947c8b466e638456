"""Readers keep the published snapshot open between queries, and still see each new publication at once,
even while a query on the replaced snapshot is still reading it."""

from __future__ import annotations

from pathlib import Path

import duckdb

from cms_dagster.warehouse import snapshot


def _publish(db: Path, rows: int) -> None:
    con = duckdb.connect(str(db))
    con.execute("create schema if not exists marts")
    con.execute("create or replace table marts.runs as select range as run from range(?)", [rows])
    con.execute("create or replace view marts.v_runs as select * from warehouse.marts.runs")  # names its catalog
    snapshot.publish(con, db)
    con.close()


def _count(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("select count(*) from marts.v_runs").fetchone()[0]


def test_a_new_publication_is_read_at_once_while_a_reader_of_the_old_one_is_open(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    _publish(db, 3)
    assert not snapshot.live_changed_since_publication(db)  # so readers read the snapshot, not the live file
    old = snapshot.open_reader(db)
    assert _count(old) == 3
    again = snapshot.open_reader(db)
    assert _count(again) == 3  # the same snapshot, read through the attachment already open
    again.close()

    _publish(db, 5)
    assert not snapshot.live_changed_since_publication(db)
    new = snapshot.open_reader(db)
    assert _count(new) == 5  # not the replaced file the old reader still holds
    assert _count(old) == 3  # which keeps answering from the snapshot it opened
    old.close()
    new.close()
    assert _count(snapshot.open_reader(db)) == 5
