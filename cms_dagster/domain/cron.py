"""A small cron matcher (minute hour day-of-month month day-of-week) for schedules in the ontology."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]  # day-of-week 0 and 7 are Sunday
_NAMES = ["minute", "hour", "day-of-month", "month", "day-of-week"]


def _field(spec: str, lo: int, hi: int, name: str) -> frozenset[int]:
    out: set[int] = set()
    for part in spec.split(","):
        step = 1
        if "/" in part:
            part, s = part.split("/", 1)
            step = int(s)
            if step < 1:
                raise ValueError(f"{name}: step must be >= 1")
        if part == "*":
            a, b = lo, hi
        elif "-" in part:
            a, b = (int(x) for x in part.split("-", 1))
        else:
            a = b = int(part)
        if not (lo <= a <= hi and lo <= b <= hi and a <= b):
            raise ValueError(f"{name}: {part!r} is outside {lo}-{hi}")
        out.update(range(a, b + 1, step))
    if name == "day-of-week" and 7 in out:
        out = (out - {7}) | {0}
    return frozenset(out)


class Cron:
    """A parsed five-field cron expression, evaluated in UTC."""

    def __init__(self, expr: str) -> None:
        parts = expr.split()
        if len(parts) != 5:
            raise ValueError(f"cron {expr!r} must have 5 fields (minute hour day-of-month month day-of-week)")
        try:
            self.fields = [
                _field(p, lo, hi, n) for p, (lo, hi), n in zip(parts, _RANGES, _NAMES, strict=True)
            ]
        except ValueError as e:
            raise ValueError(f"cron {expr!r}: {e}") from None
        self.expr = expr

    def matches(self, t: dt.datetime) -> bool:
        mi, ho, dom, mo, dow = self.fields
        return (
            t.minute in mi and t.hour in ho and t.day in dom and t.month in mo and (t.isoweekday() % 7) in dow
        )

    def times(self, start: dt.datetime, end: dt.datetime) -> Iterator[dt.datetime]:
        """Every scheduled time in [start, end), minute resolution."""
        mi, ho = sorted(self.fields[0]), sorted(self.fields[1])
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        while day < end:
            if (
                day.day in self.fields[2]
                and day.month in self.fields[3]
                and (day.isoweekday() % 7) in self.fields[4]
            ):
                for h in ho:
                    for m in mi:
                        t = day.replace(hour=h, minute=m)
                        if start <= t < end:
                            yield t
            day += dt.timedelta(days=1)
