"""Run a guarded SELECT read-only, with a statement timeout: DuckDB's published snapshot opened read-only
(warehouse/snapshot.py: it answers while a build holds the write lock) and interrupted at the timeout; Snowflake with STATEMENT_TIMEOUT_IN_SECONDS on the session."""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd

from cms_dagster.warehouse import snapshot
from cms_dagster.warehouse.client import Warehouse

DEFAULT_TIMEOUT_S = 10.0


class ExecutionError(RuntimeError):
    """The query could not run (no warehouse yet, timeout, or a warehouse error)."""


def run_readonly(warehouse: Warehouse, sql: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> pd.DataFrame:
    if warehouse.kind == "duckdb":
        path = warehouse.settings.duckdb_path
        if not path.exists():
            raise ExecutionError(f"no warehouse at {path}: build it first (cms demo, or the Dagster assets)")
        # a connection of its own: the settings below must not reach the process's other readers
        con = snapshot.open_reader(path, private=True)
        # no files, extensions or settings changes from here on, whatever the SQL says
        con.execute("set enable_external_access = false")
        con.execute("set lock_configuration = true")
        timer = threading.Timer(timeout_s, con.interrupt)
        timer.start()
        try:
            return con.execute(sql).df()
        except Exception as e:  # duckdb raises its own exception types
            if "interrupt" in str(e).lower():
                raise ExecutionError(f"the query took longer than {timeout_s:g} s and was stopped") from None
            raise ExecutionError(f"the warehouse could not run the query: {str(e).splitlines()[0]}") from None
        finally:
            timer.cancel()
            con.close()
    with warehouse.connect() as con:
        cur = con.cursor()
        try:
            cur.execute(f"alter session set statement_timeout_in_seconds = {int(max(1, timeout_s))}")
            cur.execute(sql)
            df: Any = cur.fetch_pandas_all()
        except Exception as e:
            raise ExecutionError(f"the warehouse could not run the query: {str(e).splitlines()[0]}") from None
        df.columns = [c.lower() for c in df.columns]
        return df


def history_start(warehouse: Warehouse, table: str, column: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """The earliest time in a mart (how much history "usual" can use)."""
    df = run_readonly(warehouse, f"select min({column}) as t from marts.{table} limit 1", timeout_s)
    return None if df.empty else df.iloc[0, 0]
