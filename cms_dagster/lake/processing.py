"""Raw zone → processed zone: flatten each raw batch of an hour to Parquet points; quarantine what fails.

One Parquet file per raw batch, at a key derived from the batch, so re-processing overwrites rather than
adds. A batch that cannot be read at all is copied whole to quarantine
(``<batch>.processed.jsonl.gz``); bad lines and points go to ``<batch>.processed-<digest>.rejected.jsonl``
with their reasons (docs/data-contract.md). Quarantine only grows: this step never deletes or replaces a
quarantine file, and its names never meet the receiver's (``<batch>.received.*``).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import multiprocessing
import os
import zlib
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from cms_dagster import lake as lake_mod
from cms_dagster.otel.flatten import Flattened, flatten_lines

QUARANTINE_WRITER = "processed"  # the receiver writes <batch>.received.*, this step <batch>.processed*.*
# from this many hours (a back-fill; the hourly schedule processes one) the hours are processed in two
# processes: below it, starting them costs more than it saves
PARALLEL_HOURS = 12


@dataclass
class HourReport:
    day: dt.date
    hour: int
    raw_files: int = 0
    points: int = 0
    bytes_in: int = 0
    rejected_lines: int = 0
    rejected_points: int = 0
    quarantined_files: int = 0
    quarantine_keys: list[str] = field(default_factory=list)
    processed_keys: list[str] = field(default_factory=list)
    points_by_source: Counter = field(default_factory=Counter)

    @property
    def partition(self) -> str:
        return f"{self.day.isoformat()}-{self.hour:02d}:00"


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", row_group_size=256_000)
    return buf.getvalue()


def _read_lines(data: bytes) -> list[bytes]:
    text = gzip.decompress(data)
    text.decode("utf-8")  # raise on non-UTF-8 before anything is parsed
    return text.split(b"\n")


def process_batch(lake: lake_mod.Lake, key: str, report: HourReport) -> None:
    parsed = lake_mod.parse_raw_key(key)
    batch = parsed["batch"]
    data = lake.raw.get(key)
    report.raw_files += 1
    report.bytes_in += len(data)
    try:
        lines = _read_lines(data)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        qkey = lake_mod.quarantine_key_for(key, "jsonl.gz", QUARANTINE_WRITER)
        reason = {
            "batch": batch,
            "writer": QUARANTINE_WRITER,
            "source_key": key,
            "rejected_lines": None,
            "rejected_points": None,
            "reasons": {f"unreadable batch: {type(e).__name__}: {e}": 1},
        }
        lake.raw.put_new(qkey, data)
        lake.raw.put_new(
            lake_mod.quarantine_key_for(key, "reason.json", QUARANTINE_WRITER),
            orjson.dumps(reason, option=orjson.OPT_INDENT_2),
        )
        report.quarantined_files += 1
        report.quarantine_keys.append(qkey)
        return
    ingested = lake_mod.batch_ingest_time(batch) or dt.datetime(
        parsed["dt"].year, parsed["dt"].month, parsed["dt"].day, parsed["hour"], tzinfo=dt.timezone.utc
    ) + dt.timedelta(hours=1)
    flat: Flattened = flatten_lines(
        lines,
        source=parsed["source"],
        raw_key=key,
        ingested_at=ingested,
        day=parsed["dt"],
        hour=parsed["hour"],
    )
    pkey = lake_mod.processed_key(parsed["dt"], parsed["hour"], parsed["source"], batch)
    lake.processed.put(pkey, parquet_bytes(flat.table))
    report.processed_keys.append(pkey)
    report.points += flat.points
    report.points_by_source[parsed["source"]] += flat.points
    if flat.rejected:
        lines_out = b"".join(
            orjson.dumps({"line": r.line, "reason": r.reason, "payload": r.payload}) + b"\n"
            for r in flat.rejected
        )
        # named after its content: a re-run that rejects the same points writes nothing new, one that
        # rejects others adds a file beside the first; quarantine is never overwritten or deleted
        tag = f"{QUARANTINE_WRITER}-{hashlib.sha256(lines_out).hexdigest()[:12]}"
        rej_key = lake_mod.quarantine_key_for(key, "rejected.jsonl", tag)
        bad_lines = {
            r.line for r in flat.rejected if r.reason.startswith(("malformed JSON", "not a valid OTLP"))
        }
        reason = {
            "batch": batch,
            "writer": QUARANTINE_WRITER,
            "source_key": key,
            "rejected_lines": len(bad_lines),
            "rejected_points": len(flat.rejected) - len(bad_lines),
            "reasons": dict(Counter(r.reason for r in flat.rejected)),
        }
        lake.raw.put_new(rej_key, lines_out)
        lake.raw.put_new(lake_mod.quarantine_key_for(key, "reason.json", tag), orjson.dumps(reason, option=orjson.OPT_INDENT_2))
        report.rejected_lines += reason["rejected_lines"]
        report.rejected_points += reason["rejected_points"]
        report.quarantine_keys.append(rej_key)


def process_hour(lake: lake_mod.Lake, day: dt.date, hour: int) -> HourReport:
    """Flatten every raw batch of one hour into the processed zone."""
    report = HourReport(day, hour)
    for key in lake.raw_keys_for_hour(day, hour):
        process_batch(lake, key, report)
    return report


def unprocessed_batches(lake: lake_mod.Lake, day: dt.date, hour: int) -> list[str]:
    """The raw batches of one hour that processing has not seen yet: no Parquet file in the processed zone
    and no copy in quarantine. Raw files are immutable and every batch processed leaves one or the other,
    so these arrived after the hour was last processed (a late delivery, a re-collected hour). Sorted by
    key; empty when the hour is up to date."""
    done = {k for k in lake.processed.list(lake_mod.processed_hour_prefix(day, hour)) if k.endswith(".parquet")}
    waiting = []
    for key in lake.raw_keys_for_hour(day, hour):
        parsed = lake_mod.parse_raw_key(key)
        if lake_mod.processed_key(parsed["dt"], parsed["hour"], parsed["source"], parsed["batch"]) in done:
            continue
        if lake.raw.exists(lake_mod.quarantine_key_for(key, "jsonl.gz", QUARANTINE_WRITER)):
            continue  # unreadable: set aside whole when the hour was processed
        waiting.append(key)
    return sorted(waiting)


@dataclass
class ProcessingTotals:
    """What processing several hours did, summed (the quarantine keys of all of them)."""

    raw_files: int = 0
    points: int = 0
    rejected_lines: int = 0
    rejected_points: int = 0
    quarantined_files: int = 0
    quarantine_keys: list[str] = field(default_factory=list)

    def add(self, report: HourReport) -> None:
        self.raw_files += report.raw_files
        self.points += report.points
        self.rejected_lines += report.rejected_lines
        self.rejected_points += report.rejected_points
        self.quarantined_files += report.quarantined_files
        self.quarantine_keys += report.quarantine_keys


def process_hours(lake: lake_mod.Lake, hours: Iterable[tuple[dt.date, int]], workers: int | None = None) -> ProcessingTotals:
    """Flatten every raw batch of each of ``hours`` ((day, hour) pairs) into the processed zone.

    The hours are independent (each writes only its own processed and quarantine files), so from
    ``PARALLEL_HOURS`` hours on (a back-fill) they are shared between two processes, one per core;
    ``workers`` sets the number instead. The totals are the same either way, in the order of ``hours``."""
    hours = list(hours)
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if len(hours) >= PARALLEL_HOURS else 1
    totals = ProcessingTotals()
    if workers <= 1 or len(hours) < 2:
        for day, hour in hours:
            totals.add(process_hour(lake, day, hour))
        return totals
    # spawned, not forked: a fork would copy the caller's open connections and threads
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(hours)), mp_context=ctx) as pool:
        for report in pool.map(process_hour, [lake] * len(hours), *zip(*hours, strict=True)):
            totals.add(report)
    return totals


@dataclass(frozen=True)
class QuarantineSummary:
    """What waits in the raw zone's quarantine: its reason files and how often each reason was given."""

    reason_keys: list[str]
    reasons: dict[str, int]


def quarantine_summary(raw: lake_mod.Zone, limit: int = 200) -> QuarantineSummary:
    """The ``.reason.json`` files under ``quarantine/`` and their reasons counted (from the first ``limit``
    files: a reason given without a count counts once)."""
    keys = [k for k in raw.list(f"{lake_mod.QUARANTINE_PREFIX}/") if k.endswith(".reason.json")]
    reasons: dict[str, int] = {}
    for k in keys[:limit]:
        for reason, n in orjson.loads(raw.get(k)).get("reasons", {}).items():
            reasons[reason] = reasons.get(reason, 0) + (n or 1)
    return QuarantineSummary(keys, reasons)

