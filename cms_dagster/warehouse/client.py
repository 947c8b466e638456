"""The warehouse adapter for the Python side (detection, RCA evidence, questions, the dashboard): query to
pandas, replace a time span of a table. DuckDB on the embedded default, Snowflake in production; same SQL
(qmark params).

    wh = Warehouse(settings)                       # settings: cms_dagster.settings.Settings
    wh.query("select * from marts.fct_batch_runs where run_date = ?", [day])   # -> pandas.DataFrame

On DuckDB, :meth:`Warehouse.query` reads the snapshot published after each write
(cms_dagster.warehouse.snapshot), so it answers while a dbt build or a load holds the write lock, and a
reader never blocks a writer; :meth:`Warehouse.replace_span` and :meth:`Warehouse.replace_rows` publish a new
snapshot when they commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

from cms_dagster import settings as settings_mod
from cms_dagster.warehouse import duckdb_load, snapshot

_PD_TO_SQL = {"object": "VARCHAR", "float64": "DOUBLE", "bool": "BOOLEAN", "int64": "BIGINT"}


def _sql_type(dtype: Any) -> str:
    s = str(dtype)
    if s.startswith("datetime64"):
        return "TIMESTAMP"
    return _PD_TO_SQL.get(s, "VARCHAR")


def _pyformat(sql: str) -> str:
    """The connector's default paramstyle is pyformat: the same statements with %s for ?."""
    return sql.replace("%", "%%").replace("?", "%s")


class Warehouse:
    """DuckDB (embedded) or Snowflake, as ``settings.warehouse`` selects; read-only access through :meth:`query`."""

    def __init__(self, settings: settings_mod.Settings) -> None:
        self.settings = settings
        self.kind = settings.warehouse
        self.marts = "marts" if self.kind == "duckdb" else "MARTS"

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A connection that may write (DuckDB: waits for another writer's lock). Readers use :meth:`query`."""
        if self.kind == "duckdb":
            con = duckdb_load.connect(self.settings.duckdb_path)
            try:
                yield con
            finally:
                con.close()
        else:
            from cms_dagster.warehouse.snowflake_load import connect as sf_connect

            con = sf_connect(self.settings)
            try:
                yield con
            finally:
                con.close()

    @contextmanager
    def read_connection(self) -> Iterator[Any]:
        """A read-only connection: on DuckDB the published snapshot (warehouse/snapshot.py), which no writer locks."""
        if self.kind != "duckdb":
            with self.connect() as con:
                yield con
            return
        con = snapshot.open_reader(self.settings.duckdb_path)
        try:
            yield con
        finally:
            con.close()

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        """Run one read-only statement and return its rows; on DuckDB it never waits for a writer."""
        with self.read_connection() as con:
            if self.kind == "duckdb":
                return con.execute(sql, params or []).df()
            cur = con.cursor()
            cur.execute(_pyformat(sql), params or [])
            df = cur.fetch_pandas_all()
            df.columns = [c.lower() for c in df.columns]
            return df

    def replace_span(
        self,
        table: str,
        df: pd.DataFrame,
        ts_column: str,
        start: dt.datetime,
        end: dt.datetime,
        where: dict[str, str],
    ) -> int:
        """Delete the rows of ``table`` in [start, end) matching ``where``, then insert ``df`` (idempotent)."""
        cond = " and ".join([f"{k} = ?" for k in where] + [f"{ts_column} >= ?", f"{ts_column} < ?"])
        params = [*where.values(), start.replace(tzinfo=None), end.replace(tzinfo=None)]
        self._delete_then_insert(table, df, cond, params)
        return len(df)

    def replace_rows(self, table: str, df: pd.DataFrame, key: str) -> int:
        """Replace the rows of ``table`` whose ``key`` column is one of ``df``'s (delete them, insert ``df``) in
        one transaction; on DuckDB the readers' snapshot is published once, whatever the number of rows."""
        if not len(df):
            return 0
        keys = [str(k) for k in df[key].drop_duplicates()]
        self._delete_then_insert(table, df, f"{key} in ({', '.join('?' for _ in keys)})", keys)
        return len(df)

    def _delete_then_insert(self, table: str, df: pd.DataFrame, cond: str, params: list) -> None:
        """Delete the rows of ``table`` matching ``cond`` (qmark ``params``), then insert ``df``, creating the
        schema and table when missing; on DuckDB in one transaction, then published to the readers."""
        schema, name = table.split(".")
        cols = ", ".join(f"{c} {_sql_type(t)}" for c, t in df.dtypes.items())
        with self.connect() as con:
            if self.kind == "duckdb":
                con.execute(f"create schema if not exists {schema}")
                con.execute(f"create table if not exists {table} ({cols})")
                con.execute("begin transaction")
                con.execute(f"delete from {table} where {cond}", params)
                if len(df):
                    con.register("incoming", df)
                    con.execute(f"insert into {table} by name select * from incoming")
                    con.unregister("incoming")
                con.execute("commit")
                snapshot.publish(con, self.settings.duckdb_path)
            else:
                from snowflake.connector.pandas_tools import write_pandas

                cur = con.cursor()
                cur.execute(f"create schema if not exists {schema}")
                cur.execute(f"create table if not exists {table} ({cols})")
                cur.execute(_pyformat(f"delete from {table} where {cond}"), params)
                if len(df):
                    up = df.copy()
                    up.columns = [c.upper() for c in up.columns]
                    write_pandas(con, up, name.upper(), schema=schema.upper(), use_logical_type=True)


def from_settings(settings: settings_mod.Settings) -> Warehouse:
    """The same as ``Warehouse(settings)``."""
    return Warehouse(settings)
