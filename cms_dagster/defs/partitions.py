"""The partitioning every hourly asset shares: the raw zone's UTC hours."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import dagster as dg

# The embedded demo's data starts here (Monday 2026-11-16); production back-fills from the same origin.
PARTITIONS_START = "2026-11-16-00:00"
# end_offset=1: the hour in progress is a partition too, so traffic received now can be loaded now
hourly_partitions = dg.HourlyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC", end_offset=1)


def hours_of(context: dg.AssetExecutionContext) -> Iterator[tuple[dt.date, int]]:
    """The (day, hour) pairs a run covers: one partition, or a whole range in a single-run back-fill."""
    window = context.partition_time_window
    t = window.start.astimezone(dt.timezone.utc)
    end = window.end.astimezone(dt.timezone.utc)
    while t < end:
        yield t.date(), t.hour
        t += dt.timedelta(hours=1)
