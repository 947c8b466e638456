"""Readers of the embedded warehouse answer while another process holds the DuckDB write lock, and never
block a writer: they read the snapshot published after each write (cms_dagster/warehouse/snapshot.py)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from cms_dagster import settings
from cms_dagster.warehouse import snapshot
from cms_dagster.warehouse.client import Warehouse

# A writer in its own process: takes the write lock, inserts inside an open transaction, says "holding",
# and keeps the lock until told on stdin to commit (and publish, as every CMS writer does) or to give up.
WRITER = """
import sys
from pathlib import Path
import duckdb
from cms_dagster.warehouse import snapshot
db = Path(sys.argv[1])
con = duckdb.connect(str(db))
con.execute("begin transaction")
con.execute("insert into marts.prices select 'late', 99.0")
print("holding", flush=True)
order = sys.stdin.readline().strip()
if order == "commit":
    con.execute("commit")
    snapshot.publish(con, db)
else:
    con.execute("rollback")
con.close()
print("done", flush=True)
"""

QUERY_TIMEOUT_S = 20  # generous: a blocked reader would wait for the writer, which waits for the test


def _warehouse(home: Path) -> Warehouse:
    return Warehouse(settings.load({"CMS_HOME": str(home)}))


def _seed(db: Path) -> None:
    con = duckdb.connect(str(db))
    con.execute("create schema marts")
    con.execute("create table marts.prices (symbol varchar, price double)")
    con.execute("insert into marts.prices values ('EURUSD', 1.08), ('GBPUSD', 1.27)")
    con.execute("create view marts.v_prices as select * from warehouse.marts.prices")  # names its catalog, as dbt does
    snapshot.publish(con, db)
    con.close()


def _query_within_timeout(wh: Warehouse, sql: str) -> pd.DataFrame:
    """Run one query in a thread; fail if it has not answered before the timeout (it would be blocked)."""
    out: dict = {}

    def run() -> None:
        try:
            out["df"] = wh.query(sql)
        except Exception as e:  # noqa: BLE001 - handed to the test thread
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(QUERY_TIMEOUT_S)
    assert not t.is_alive(), f"the reader was still waiting after {QUERY_TIMEOUT_S} s: {sql}"
    if "error" in out:
        raise out["error"]
    return out["df"]


@pytest.fixture
def held_writer(tmp_path: Path):
    home = tmp_path / "cms"
    home.mkdir()
    db = home / "warehouse.duckdb"
    _seed(db)
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "holding"
    yield home, db, proc
    if proc.poll() is None:
        proc.stdin.write("rollback\n")
        proc.stdin.flush()
        proc.wait(timeout=30)


def test_queries_answer_from_the_snapshot_while_another_process_holds_the_write_lock(held_writer):
    home, db, proc = held_writer
    with pytest.raises(duckdb.IOException, match="lock"):
        duckdb.connect(str(db), read_only=True)  # the live file is locked: what readers used to wait for
    wh = _warehouse(home)
    for _ in range(20):
        df = _query_within_timeout(wh, "select symbol, price from marts.v_prices order by symbol")
        assert df.symbol.tolist() == ["EURUSD", "GBPUSD"]  # the last published state, not the open transaction
    assert proc.poll() is None  # the writer held its lock through the whole reader phase
    proc.stdin.write("commit\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "done" and proc.wait(timeout=30) == 0
    df = _query_within_timeout(wh, "select symbol from marts.prices order by symbol")
    assert df.symbol.tolist() == ["EURUSD", "GBPUSD", "late"]  # the writer's publication reached the readers


def test_an_open_reader_does_not_stop_a_writer_from_taking_the_lock(tmp_path: Path):
    home = tmp_path / "cms"
    home.mkdir()
    db = home / "warehouse.duckdb"
    _seed(db)
    wh = _warehouse(home)
    with wh.read_connection() as con:
        assert con.execute("select count(*) from marts.prices").fetchone() == (2,)
        writer = duckdb.connect(str(db))  # would raise "Conflicting lock" if the reader held the live file
        writer.execute("insert into marts.prices values ('USDJPY', 151.2)")
        snapshot.publish(writer, db)
        writer.close()
    assert _query_within_timeout(wh, "select count(*) as n from marts.prices").n.tolist() == [3]


def test_a_change_made_without_publishing_is_read_from_the_live_file_when_no_writer_holds_it(tmp_path: Path):
    home = tmp_path / "cms"
    home.mkdir()
    db = home / "warehouse.duckdb"
    _seed(db)
    con = duckdb.connect(str(db))
    con.execute("delete from marts.prices where symbol = 'GBPUSD'")
    con.close()
    assert snapshot.live_changed_since_publication(db)
    df = _query_within_timeout(_warehouse(home), "select symbol from marts.prices")
    assert df.symbol.tolist() == ["EURUSD"]


def test_replacing_a_span_publishes_it_to_readers(tmp_path: Path):
    home = tmp_path / "cms"
    home.mkdir()
    wh = _warehouse(home)
    t0 = pd.Timestamp("2026-11-16 10:00")
    df = pd.DataFrame({"ts": [t0, t0 + pd.Timedelta(minutes=1)], "source": ["x", "x"], "score": [0.1, 0.9]})
    wh.replace_span("intelligence.anomalies", df, "ts", t0.to_pydatetime(), (t0 + pd.Timedelta(hours=1)).to_pydatetime(), {"source": "x"})
    assert snapshot.snapshot_path(wh.settings.duckdb_path).exists()
    assert not snapshot.live_changed_since_publication(wh.settings.duckdb_path)
    assert wh.query("select count(*) as n from intelligence.anomalies where source = ?", ["x"]).n.tolist() == [2]


def test_replacing_rows_by_key_keeps_the_others_and_publishes_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "cms"
    home.mkdir()
    wh = _warehouse(home)
    wh.replace_rows("intelligence.incidents", pd.DataFrame({"id": ["a", "b"], "status": ["open", "open"]}), "id")
    published = []
    real_publish = snapshot.publish
    monkeypatch.setattr(snapshot, "publish", lambda con, db: published.append(db) or real_publish(con, db))
    n = wh.replace_rows("intelligence.incidents", pd.DataFrame({"id": ["b", "c"], "status": ["closed", "open"]}), "id")
    assert n == 2 and len(published) == 1
    rows = wh.query("select id, status from intelligence.incidents order by id", [])
    assert list(zip(rows.id, rows.status, strict=True)) == [("a", "open"), ("b", "closed"), ("c", "open")]
    assert wh.replace_rows("intelligence.incidents", pd.DataFrame({"id": [], "status": []}), "id") == 0


def test_loading_points_publishes_them_to_readers(tmp_path: Path, scenario_lake):
    from cms_dagster.warehouse.duckdb_load import load_hours

    home = tmp_path / "cms"
    home.mkdir()
    wh = _warehouse(home)
    hours = [(dt.date(2026, 11, 16), 13), (dt.date(2026, 11, 16), 14)]
    report = load_hours(wh.settings.duckdb_path, scenario_lake.zone, hours)
    assert report.inserted > 0
    assert not snapshot.live_changed_since_publication(wh.settings.duckdb_path)
    # what a reader opens is the published copy, and it holds every loaded point
    con = duckdb.connect(str(snapshot.snapshot_path(wh.settings.duckdb_path)), read_only=True)
    try:
        assert con.execute("select count(*) from raw.metric_points").fetchone()[0] == report.total_rows
    finally:
        con.close()


def test_a_query_before_any_warehouse_exists_says_which_table_is_missing(tmp_path: Path):
    wh = _warehouse(tmp_path / "nothing-yet")
    with pytest.raises(duckdb.CatalogException, match="marts"):
        wh.query("select * from marts.fct_batch_runs")
    assert not (tmp_path / "nothing-yet" / "warehouse.duckdb").exists()  # a reader creates nothing


def test_a_question_locking_its_connection_leaves_other_readers_free(tmp_path: Path):
    from cms_dagster.nlq.execute import run_readonly

    home = tmp_path / "cms"
    home.mkdir()
    _seed(home / "warehouse.duckdb")
    wh = _warehouse(home)
    assert wh.query("select count(*) as n from marts.prices").n.tolist() == [2]
    # `cms ask` turns off external access and locks its connection's configuration
    assert run_readonly(wh, "select symbol from marts.v_prices order by symbol").symbol.tolist() == ["EURUSD", "GBPUSD"]
    # the process's shared snapshot reader still sets its time zone and answers
    assert wh.query("select count(*) as n from marts.prices").n.tolist() == [2]
    assert run_readonly(wh, "select count(*) as n from marts.prices").n.tolist() == [2]
