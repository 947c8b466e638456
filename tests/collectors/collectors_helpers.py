"""Constants and helpers shared by the collector tests (importable; conftest only holds fixtures)."""


from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Iterable

import pyarrow as pa

from cms_dagster import lake
from cms_dagster.otel.flatten import flatten_lines

UTC = dt.timezone.utc
HOUR = dt.datetime(2026, 11, 20, 14, tzinfo=UTC)  # the data hour of the moto fixtures
ACCOUNT = "123456789012"


def read_points(raw: lake.Zone, keys: Iterable[str]) -> pa.Table:
    """Flatten raw batches into points, as the processed zone will."""
    tables = []
    for k in keys:
        info = lake.parse_raw_key(k)
        lines = gzip.decompress(raw.get(k)).splitlines()
        f = flatten_lines(
            lines,
            source=info["source"],
            raw_key=k,
            ingested_at=lake.batch_ingest_time(info["batch"]),
            day=info["dt"],
            hour=info["hour"],
        )
        assert not f.rejected, f.rejected[:3]
        tables.append(f.table)
    return pa.concat_tables(tables) if tables else None


def raw_batches(raw: lake.Zone, source: str = "cloudwatch") -> list[str]:
    return [k for k in raw.list(f"otel/metrics/source={source}/") if k.endswith(".jsonl.gz")]


# --- moto in server mode, with a small, realistic estate ---------------------------------------------


