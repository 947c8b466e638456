"""Hour windows, the unit of collection: a window is one data hour [start, start + 1 h) of the raw zone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["HOUR", "Window", "hour_windows", "previous_hour", "spans", "utc"]

HOUR = dt.timedelta(hours=1)
_UTC = dt.timezone.utc


@dataclass(frozen=True)
class Window:
    """One data hour: [start, start + 1 h)."""

    start: dt.datetime

    @property
    def end(self) -> dt.datetime:
        return self.start + HOUR

    @property
    def label(self) -> str:
        return f"{self.start:%Y-%m-%dT%H:00Z}"


def hour_windows(start: dt.datetime, end: dt.datetime) -> list[Window]:
    """The hour windows covering [start, end): start rounded down, end rounded up to the hour."""
    start, end = utc(start), utc(end)
    if end <= start:
        raise ValueError(f"end {end.isoformat()} must be after start {start.isoformat()}")
    t = start.replace(minute=0, second=0, microsecond=0)
    out = []
    while t < end:
        out.append(Window(t))
        t += HOUR
    return out


def previous_hour(now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The last complete hour before ``now``."""
    now = utc(now or dt.datetime.now(_UTC))
    end = now.replace(minute=0, second=0, microsecond=0)
    return end - HOUR, end


def utc(t: dt.datetime) -> dt.datetime:
    if t.tzinfo is None:
        return t.replace(tzinfo=_UTC)
    return t.astimezone(_UTC)


def spans(windows: Sequence[Window], max_hours: int) -> list[list[Window]]:
    spans: list[list[Window]] = []
    for w in windows:
        if spans and spans[-1][-1].end == w.start and len(spans[-1]) < max(1, max_hours):
            spans[-1].append(w)
        else:
            spans.append([w])
    return spans
