"""Constants and helpers shared by the collector tests (importable; conftest only holds fixtures)."""


from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Iterable

import pyarrow as pa

from cms_dagster import lake
from cms_dagster.otel.flatten import flatten_lines

UTC = dt.timezone.utc
# The data hour of the moto fixtures: 14:00 UTC two days ago, derived from the clock because CloudWatch Logs
# (moto too) drops log events older than 14 days, so a fixed date stops working two weeks after it is written.
HOUR = dt.datetime.combine(dt.datetime.now(UTC).date() - dt.timedelta(days=2), dt.time(14), tzinfo=UTC)
DAY = HOUR.strftime("%Y-%m-%d")  # its date as partition keys and raw keys spell it
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


