"""The dashboard answers while another process writes the warehouse (a dbt build, a points load): it reads
the snapshot published after the last write (cms_dagster/warehouse/snapshot.py) and never waits for the
DuckDB write lock."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from test_dashboard_pages import CHARTS, assert_clean, table

from cms_dagster.warehouse import snapshot

# A writer in its own process, as dbt is: commits a change after the last publication (so the live file is
# newer than the snapshot and readers first try it), then holds the write lock inside an open transaction
# until told to stop on stdin.
WRITER = """
import sys
import duckdb
con = duckdb.connect(sys.argv[1])
con.execute("create table if not exists marts.build_in_progress (step integer)")
con.execute("insert into marts.build_in_progress values (1)")
con.execute("checkpoint")
con.execute("begin transaction")
con.execute("delete from marts.fct_batch_runs")
print("holding", flush=True)
sys.stdin.readline()
con.execute("rollback")
con.close()
"""


@pytest.fixture(scope="module")
def written_db(tmp_path_factory: pytest.TempPathFactory, scenario_db: Path) -> Iterator[Path]:
    """A copy of the scenario with its snapshot published, and a writer process holding its write lock
    while every page of the module renders."""
    db = tmp_path_factory.mktemp("live") / "warehouse.duckdb"
    shutil.copyfile(scenario_db, db)
    con = duckdb.connect(str(db))
    snapshot.publish(con, db)
    con.close()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        with pytest.raises(duckdb.IOException, match="lock"):
            duckdb.connect(str(db), read_only=True)  # the live file is locked, as during a dbt build
        yield db
        assert proc.poll() is None  # the writer held its lock through every page
    finally:
        if proc.poll() is None:
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("page", ["overview", "feeds", "batches", "stages"])
def test_pages_answer_from_the_snapshot_while_another_process_holds_the_write_lock(
    open_page, written_db: Path, page: str
) -> None:
    at = open_page(written_db, page, range="7d")
    assert_clean(at)
    assert len(at.get("plotly_chart")) == CHARTS[page]
    if page == "batches":  # the published runs, not the writer's uncommitted delete
        assert len(table(at, "gantt"))
