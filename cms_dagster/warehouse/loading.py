"""What the two point loaders share (DuckDB: :mod:`duckdb_load`, Snowflake: :mod:`snowflake_load`): the
processed files of an hour, the report of a load, and one entry point that loads hours into the configured
warehouse."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cms_dagster import lake as lake_mod
from cms_dagster import settings as settings_mod

__all__ = ["LoadReport", "load_points", "processed_keys_for_hour"]


@dataclass
class LoadReport:
    """What a load did: files read, points staged, inserted, replaced or unchanged, rows in the table."""

    files: int = 0
    staged: int = 0
    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0
    total_rows: int = 0

    def add(self, other: LoadReport) -> None:
        """Sum ``other`` into this report (the table's rows: the latest count)."""
        for f in ("files", "staged", "inserted", "replaced", "unchanged"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        self.total_rows = other.total_rows


def processed_keys_for_hour(zone: lake_mod.Zone, day: dt.date, hour: int) -> list[str]:
    """The processed zone's Parquet files of one hour."""
    return [k for k in zone.list(lake_mod.processed_hour_prefix(day, hour)) if k.endswith(".parquet")]


def load_points(
    settings: settings_mod.Settings,
    processed: lake_mod.Zone,
    hours: Iterable[tuple[dt.date, int]],
    log: Callable[[str], None] | None = None,
) -> LoadReport:
    """Load the processed points of ``hours`` ((day, hour) pairs) into raw.metric_points of the configured
    warehouse (DuckDB or Snowflake), idempotently by point id."""
    if settings.warehouse == "snowflake":
        from cms_dagster.warehouse.snowflake_load import load_hours_snowflake

        return load_hours_snowflake(processed, hours, log=log, settings=settings)
    from cms_dagster.warehouse.duckdb_load import load_hours

    return load_hours(settings.duckdb_path, processed, hours)
