"""The lake: raw, processed and archive zones on a local directory or S3, and the one key layout.

- :mod:`cms_dagster.lake.layout`: every key the lake holds (raw batches, quarantine, checkpoints,
  processed points, archive), built and parsed in one place.
- :mod:`cms_dagster.lake.zone`: :class:`Zone` (atomic, durable reads and writes; ``put_new`` creates a key
  only if absent; local zones refuse symbolic links) and :class:`Lake`, built from the settings with
  :meth:`Lake.from_settings`.
- :mod:`cms_dagster.lake.processing`: raw zone -> processed zone (flatten to Parquet, quarantine what fails).
- :mod:`cms_dagster.lake.aws`: boto3 clients; :mod:`cms_dagster.lake.jsonio`: JSON with or without orjson.

Importing this package needs the standard library only (the collector's Lambda zip imports it);
``processing`` needs pyarrow and is imported on its own.
"""

from cms_dagster.lake.layout import (
    CHECKPOINTS_PREFIX,
    QUARANTINE_PREFIX,
    RAW_PREFIX,
    SOURCES,
    ZONES,
    batch_ingest_time,
    batch_name,
    hour_prefix,
    parse_raw_key,
    processed_hour_prefix,
    processed_key,
    quarantine_key,
    quarantine_key_for,
    raw_hour_prefix,
    raw_key,
    simulation_prefix,
)
from cms_dagster.lake.zone import Lake, LakeSymlinkError, Zone, gzip_bytes

__all__ = [
    "CHECKPOINTS_PREFIX",
    "QUARANTINE_PREFIX",
    "RAW_PREFIX",
    "SOURCES",
    "ZONES",
    "Lake",
    "LakeSymlinkError",
    "Zone",
    "batch_ingest_time",
    "batch_name",
    "gzip_bytes",
    "hour_prefix",
    "parse_raw_key",
    "processed_hour_prefix",
    "processed_key",
    "quarantine_key",
    "quarantine_key_for",
    "raw_hour_prefix",
    "raw_key",
    "simulation_prefix",
]
