"""The receiver's own figures: throughput, queue, rejects, flush latency (served as JSON on /stats)."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

_WINDOW_S = 10


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


@dataclass
class Stats:
    instance_id: str
    started: float = field(default_factory=time.time)
    responses: Counter[int] = field(default_factory=Counter)
    requests: int = 0
    accepted_points: int = 0
    rejected_points: int = 0
    received_bytes: int = 0
    flushes: int = 0
    flush_errors: int = 0
    files_written: int = 0
    bytes_written: int = 0
    quarantined_records: int = 0
    quarantine_dropped: int = 0
    quarantine_write_errors: int = 0
    last_flush_error: str = ""
    flush_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    _per_second: dict[int, int] = field(default_factory=dict)

    def acked(self, points: int) -> None:
        self.accepted_points += points
        sec = int(time.monotonic())
        self._per_second[sec] = self._per_second.get(sec, 0) + points
        if len(self._per_second) > 4 * _WINDOW_S:
            for s in [s for s in self._per_second if s < sec - _WINDOW_S]:
                del self._per_second[s]

    def points_per_second(self) -> float:
        now = int(time.monotonic())
        return sum(n for s, n in self._per_second.items() if now - _WINDOW_S <= s < now) / _WINDOW_S

    def as_dict(self, pending_requests: int, pending_bytes: int) -> dict[str, Any]:
        fl = list(self.flush_ms)
        up = time.time() - self.started
        return {
            "instance_id": self.instance_id,
            "uptime_s": round(up, 1),
            "requests": self.requests,
            "responses": {str(k): v for k, v in sorted(self.responses.items())},
            "accepted_points": self.accepted_points,
            "accepted_points_per_s": round(self.points_per_second(), 1),
            "accepted_points_per_s_lifetime": round(self.accepted_points / up, 1) if up > 0 else 0.0,
            "rejected_points": self.rejected_points,
            "received_bytes": self.received_bytes,
            "queue": {"requests": pending_requests, "bytes": pending_bytes},
            "flushes": self.flushes,
            "flush_errors": self.flush_errors,
            "last_flush_error": self.last_flush_error,
            "flush_latency_ms": {"p50": _percentile(fl, 0.5), "p99": _percentile(fl, 0.99)},
            "files_written": self.files_written,
            "bytes_written": self.bytes_written,
            "quarantined_records": self.quarantined_records,
            "quarantine_dropped": self.quarantine_dropped,
            "quarantine_write_errors": self.quarantine_write_errors,
        }
