"""Time handling: every API takes an optional time; otherwise the client's clock (ns since the epoch)."""

from __future__ import annotations

import datetime as _dt
import re
import threading
import time as _time
from typing import Callable, Union

TimeLike = Union[_dt.datetime, int, float, str]
Clock = Callable[[], int]

_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def system_clock() -> int:
    return _time.time_ns()


def to_ns(t: TimeLike) -> int:
    """A datetime (naive = UTC), seconds since the epoch (int or float) or RFC 3339 text as ns since the epoch."""
    if isinstance(t, str):
        return parse_rfc3339(t)
    if isinstance(t, _dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.timezone.utc)
        d = t - _EPOCH
        return (d.days * 86400 + d.seconds) * 1_000_000_000 + d.microseconds * 1000
    if isinstance(t, bool):
        raise TypeError("a time must be a datetime or seconds since the epoch, not a bool")
    if isinstance(t, int):
        return t * 1_000_000_000
    if isinstance(t, float):
        return int(round(t * 1e9))
    raise TypeError(f"a time must be a datetime or seconds since the epoch, not {type(t).__name__}")


def parse_rfc3339(text: str) -> int:
    """``2026-11-20T22:01:00.250Z`` (or with an offset) as nanoseconds, exactly (no float rounding)."""
    m = _RFC3339.match(text.strip())
    if not m:
        raise ValueError(f"time {text!r} is not RFC 3339 like 2026-11-20T22:01:00.250Z")
    whole = _dt.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.timezone.utc)
    ns = to_ns(whole) + int((m.group(2) or "").ljust(9, "0"))
    tz = m.group(3)
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        ns -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60) * 1_000_000_000
    return ns


def format_ms(ns: int) -> str:
    """Nanoseconds as UTC ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (milliseconds, truncated)."""
    secs, rem = divmod(ns, 1_000_000_000)
    stamp = (_EPOCH + _dt.timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rem // 1_000_000:03d}Z"


class ManualClock:
    """A clock you set by hand (simulations, replays, tests): pass it as ``CmsClient(clock=...)``."""

    def __init__(self, start: TimeLike = 0) -> None:
        self._lock = threading.Lock()
        self._ns = 0
        self.set(start)

    def __call__(self) -> int:
        return self._ns

    def set(self, t: TimeLike) -> None:
        ns = to_ns(t)
        with self._lock:
            self._ns = ns

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._ns += int(round(seconds * 1e9))
