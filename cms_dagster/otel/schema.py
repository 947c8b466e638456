"""Columns of the processed Parquet points and of ``raw.metric_points`` (docs/data-contract.md)."""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")
POINTS_SCHEMA = pa.schema(
    [
        ("point_id", pa.string()),
        ("metric_name", pa.string()),
        ("metric_kind", pa.string()),
        ("unit", pa.string()),
        ("ts", TS),
        ("start_ts", TS),
        ("value", pa.float64()),
        ("sum", pa.float64()),
        ("count", pa.float64()),
        ("min", pa.float64()),
        ("max", pa.float64()),
        ("p99", pa.float64()),
        ("entity_id", pa.string()),
        ("service_name", pa.string()),
        ("environment", pa.string()),
        ("account_id", pa.string()),
        ("region", pa.string()),
        ("asset_class", pa.string()),
        ("job", pa.string()),
        ("run_id", pa.string()),
        ("stage", pa.string()),
        ("feed", pa.string()),
        ("status", pa.string()),
        ("attributes", pa.string()),
        ("resource_attributes", pa.string()),
        ("source", pa.string()),
        ("raw_key", pa.string()),
        ("ingested_at", TS),
        ("dt", pa.date32()),
        ("hour", pa.int32()),
    ]
)
COLUMNS = POINTS_SCHEMA.names

# SQL types of the same columns, for warehouse DDL (DuckDB and Snowflake spell them alike here).
SQL_TYPES = {
    "string": "VARCHAR",
    "double": "DOUBLE",
    "timestamp[us, tz=UTC]": "TIMESTAMP",
    "date32[day]": "DATE",
    "int32": "INTEGER",
}


def sql_columns() -> list[tuple[str, str]]:
    return [(f.name, SQL_TYPES[str(f.type)]) for f in POINTS_SCHEMA]
