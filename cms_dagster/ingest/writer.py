"""Group commit into the raw zone: many requests, one durable batch file per hour bucket and flush.

Requests append their accepted OTLP/JSON line (and their rejected points) to the pending buffer and wait.
A flush loop writes the buffer every ``flush_s`` (sooner when ``flush_bytes`` accumulate) as one gzip'd
JSON-lines batch per receipt hour with :meth:`cms_dagster.lake.Zone.put` (atomic and fsync'd locally, one
PUT on S3), plus the quarantine files for what was rejected, and only then releases the waiting
requests. Batch names carry a per-process instance id and a sequence, so receivers sharing a lake
never collide and a restarted receiver never overwrites its earlier batches.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import itertools
import logging
import re
import secrets
import socket
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from cms_dagster.ingest.stats import Stats
from cms_dagster.ingest.validate import Rejection
from cms_dagster.lake import Zone, batch_name, raw_key
from cms_dagster.lake import quarantine_key as lake_quarantine_key
from cms_dagster.lake.layout import INGEST_CHECKPOINTS

log = logging.getLogger("cms.ingest")

SOURCE = "sdk"
PRODUCER = "ingest"
MAX_QUARANTINE_BODY = 64 * 1024
MAX_MALFORMED_PER_FLUSH = 200
QUARANTINE_WRITER = "received"

HourKey = tuple[dt.date, int]


class LakeWriteError(Exception):
    """The raw zone did not take the batch; nothing of it was acknowledged."""


def new_instance_id() -> str:
    """``<host>-<random>``: unique per receiver process (lower-case, safe in a key)."""
    host = re.sub(r"[^a-z0-9]+", "-", socket.gethostname().lower()).strip("-")[:24] or "host"
    return f"{host}-{secrets.token_hex(4)}"


def quarantine_key(day: dt.date, hour: int, batch: str, what: str) -> str:
    """``quarantine/otel/metrics/source=sdk/dt=.../hour=HH/<batch>.received.<what>``: the ``received``
    tag keeps the receiver's quarantine apart from what the processing step later writes for the same
    batch, and batch names are unique per flush, so nothing here is ever overwritten."""
    return lake_quarantine_key(SOURCE, day, hour, batch, what, writer=QUARANTINE_WRITER)


def gzip_fast(data: bytes) -> bytes:
    """Deterministic gzip (no name, mtime 0) at level 1: the receiver favours throughput over ratio."""
    c = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


@dataclass
class _HourBuffer:
    """What one flush writes for one receipt hour, and who waits for it."""

    lines: list[bytes] = field(default_factory=list)
    quarantine: list[bytes] = field(default_factory=list)  # JSON lines, serialized when submitted
    reasons: Counter = field(default_factory=Counter)
    malformed: int = 0
    waiters: list[asyncio.Future] = field(default_factory=list)
    acked_points: list[int] = field(default_factory=list)


@dataclass
class _Pending:
    hours: dict[HourKey, _HourBuffer] = field(default_factory=dict)
    nbytes: int = 0
    nrequests: int = 0  # requests waiting for this flush
    nitems: int = 0  # anything to write (waiting requests and quarantine records)
    first_at: float = 0.0

    def hour(self, key: HourKey) -> _HourBuffer:
        b = self.hours.get(key)
        if b is None:
            b = self.hours[key] = _HourBuffer()
        return b


def quarantine_record(line: int, reason: str, payload: dict[str, Any]) -> bytes:
    """One quarantine JSON line. Never raises: a payload that cannot be encoded (too deep, not JSON)
    is replaced by a note saying so, so one request's content can never fail another's flush."""
    rec = {"line": line, "reason": reason, "payload": payload}
    try:
        return orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE)
    except (TypeError, orjson.JSONEncodeError) as e:
        team = payload.get("team") if isinstance(payload, dict) else None
        safe = {"team": team if isinstance(team, str) else None, "payload_not_stored": f"cannot be encoded as JSON: {e}"[:500]}
        return orjson.dumps({"line": line, "reason": reason, "payload": safe}, option=orjson.OPT_APPEND_NEWLINE)


class Committer:
    """Buffers accepted lines and writes them durably in groups; see the module docstring."""

    def __init__(
        self,
        zone: Zone,
        stats: Stats,
        *,
        flush_s: float = 0.1,
        flush_bytes: int = 8 << 20,
        unhealthy_s: float = 2.0,
        clock: Any = None,
    ) -> None:
        self.zone = zone
        self.stats = stats
        self.instance_id = stats.instance_id
        self.flush_s = flush_s
        self.flush_bytes = flush_bytes
        self.unhealthy_s = unhealthy_s
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self._seq = itertools.count(1)
        self._pending = _Pending()
        self._inflight_bytes = 0
        self._inflight_requests = 0
        self._unhealthy_until = 0.0
        self._closing = False
        self._wake: asyncio.Event | None = None
        self._full: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cms-ingest-writer")

    # -- state seen by the app ------------------------------------------------------------------
    @property
    def pending_bytes(self) -> int:
        return self._pending.nbytes + self._inflight_bytes

    @property
    def pending_requests(self) -> int:
        return self._pending.nrequests + self._inflight_requests

    @property
    def healthy(self) -> bool:
        return time.monotonic() >= self._unhealthy_until

    def now(self) -> dt.datetime:
        return self._clock()

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="cms-ingest-flush")

    async def close(self) -> None:
        """Flush what is pending, then stop."""
        self._closing = True
        if self._wake is not None:
            self._wake.set()
            self._full.set()  # type: ignore[union-attr]
        if self._task is not None:
            await self._task
        self._executor.shutdown(wait=True)

    def probe(self) -> None:
        """Write and delete a small object: raises when the raw zone is not writable."""
        key = f"{INGEST_CHECKPOINTS}/probe-{self.instance_id}"
        self.zone.put(key, b"ok\n")
        self.zone.delete(key)

    # -- submitting ----------------------------------------------------------------------------
    def submit(
        self,
        received: dt.datetime,
        line: bytes | None,
        points: int,
        rejections: list[Rejection],
        team: str,
    ) -> asyncio.Future:
        """Queue one request's accepted line and rejected points; the future resolves once durable."""
        p = self._pending
        buf = p.hour((received.date(), received.hour))
        line_no = 0
        if line is not None:
            buf.lines.append(line)
            line_no = len(buf.lines)
        size = len(line) if line else 0
        for r in rejections:
            rec = quarantine_record(line_no, r.reason, {"team": team, **_as_dict(r.payload)})
            buf.quarantine.append(rec)
            buf.reasons[r.reason] += 1
            size += len(rec)
        fut = asyncio.get_running_loop().create_future()
        buf.waiters.append(fut)
        buf.acked_points.append(points)
        self._add(size, waiting=True)
        return fut

    def submit_malformed(
        self, received: dt.datetime, reason: str, body: bytes, team: str, content_type: str, encoding: str
    ) -> None:
        """Quarantine a malformed body (the first 64 KiB) without waiting: the client already has its 400."""
        buf = self._pending.hour((received.date(), received.hour))
        if buf.malformed >= MAX_MALFORMED_PER_FLUSH:
            self.stats.quarantine_dropped += 1
            return
        buf.malformed += 1
        rec = quarantine_record(
            0,
            reason,
            {
                "team": team,
                "content_type": content_type[:200],
                "content_encoding": encoding[:200],
                "size": len(body),
                "truncated": len(body) > MAX_QUARANTINE_BODY,
                "body_base64": base64.b64encode(body[:MAX_QUARANTINE_BODY]).decode(),
            },
        )
        buf.quarantine.append(rec)
        buf.reasons[reason] += 1
        self._add(len(rec), waiting=False)

    def _add(self, size: int, waiting: bool) -> None:
        p = self._pending
        if p.nitems == 0:
            p.first_at = time.monotonic()
        p.nbytes += size
        p.nitems += 1
        if waiting:
            p.nrequests += 1
        if self._wake is not None:
            self._wake.set()
            if p.nbytes >= self.flush_bytes:
                self._full.set()  # type: ignore[union-attr]

    # -- flushing ------------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._wake is not None and self._full is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending.nitems:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            remaining = self._pending.first_at + self.flush_s - time.monotonic()
            if remaining > 0 and not self._closing and self._pending.nbytes < self.flush_bytes:
                self._full.clear()
                try:
                    await asyncio.wait_for(self._full.wait(), remaining)
                except asyncio.TimeoutError:
                    pass
            batch, self._pending = self._pending, _Pending()
            self._inflight_bytes += batch.nbytes
            self._inflight_requests += batch.nrequests
            t0 = time.perf_counter()
            try:
                failed = await loop.run_in_executor(self._executor, self._write, batch)
            except Exception as e:  # defensive: _write reports failures per hour and does not raise
                failed = {hk: e for hk in batch.hours}
            finally:
                self._inflight_bytes -= batch.nbytes
                self._inflight_requests -= batch.nrequests
            self.stats.flush_ms.append((time.perf_counter() - t0) * 1000)
            for hk, buf in batch.hours.items():
                err = failed.get(hk)
                if err is None:
                    for f, n in zip(buf.waiters, buf.acked_points, strict=True):
                        if not f.done():
                            f.set_result(n)
                    continue
                # this hour's raw file was not written: none of its requests is stored, each gets 503
                exc = LakeWriteError(str(err))
                for f in buf.waiters:
                    if not f.done():
                        f.set_exception(exc)
            if failed:
                e = next(iter(failed.values()))
                self.stats.flush_errors += 1
                self.stats.last_flush_error = f"{type(e).__name__}: {e}"[:500]
                self._unhealthy_until = time.monotonic() + self.unhealthy_s
                log.error(
                    "raw zone write failed, %d request(s) answered 503: %s",
                    sum(len(batch.hours[hk].waiters) for hk in failed), e,
                )
            else:
                self.stats.flushes += 1

    def _write(self, batch: _Pending) -> dict[HourKey, Exception]:
        """Write one flush (runs in the writer thread): per receipt hour, the raw batch, then its
        quarantine. Returns the hours whose raw batch could not be written (their requests get 503:
        a request's line is in exactly one raw file, written by one atomic put, so 503 means nothing of
        it was stored). A quarantine write that fails is logged and counted, never fails the flush."""
        failed: dict[HourKey, Exception] = {}
        now = self.now()
        for hk, buf in sorted(batch.hours.items()):
            day, hour = hk
            name = batch_name(now, PRODUCER, f"{self.instance_id}-{next(self._seq):08d}")
            key = None
            if buf.lines:
                when = dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.timezone.utc)
                key = raw_key(SOURCE, when, name)
                data = gzip_fast(b"\n".join(buf.lines) + b"\n")
                try:
                    self.zone.put(key, data)
                except Exception as e:
                    failed[hk] = e
                    continue  # nothing of these requests is stored: their rejected points go nowhere either
                self.stats.files_written += 1
                self.stats.bytes_written += len(data)
            if buf.quarantine:
                try:
                    self._write_quarantine(day, hour, name, key, buf)
                except Exception as e:
                    self.stats.quarantine_write_errors += 1
                    self.stats.quarantine_dropped += len(buf.quarantine)
                    log.error("quarantine write failed, %d record(s) not kept: %s", len(buf.quarantine), e)
        return failed

    def _write_quarantine(self, day: dt.date, hour: int, name: str, key: str | None, buf: _HourBuffer) -> list[str]:
        summary = {
            "batch": name,
            "writer": QUARANTINE_WRITER,
            "source_key": key,
            "rejected_lines": buf.malformed,
            "rejected_points": len(buf.quarantine) - buf.malformed,
            "reasons": dict(buf.reasons.most_common()),
        }
        rk = quarantine_key(day, hour, name, "rejected.jsonl")
        sk = quarantine_key(day, hour, name, "reason.json")
        self.zone.put_new(rk, b"".join(buf.quarantine))
        self.zone.put_new(sk, orjson.dumps(summary, option=orjson.OPT_INDENT_2))
        self.stats.quarantined_records += len(buf.quarantine)
        return [rk, sk]


def _as_dict(payload: Any) -> dict[str, Any]:
    return payload if isinstance(payload, dict) else {"payload": payload}
