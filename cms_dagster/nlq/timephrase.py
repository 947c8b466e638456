"""Time phrases to UTC windows, relative to the time asked (``--as-of``, default now).

"today" is the business day in CMS_TIMEZONE (default UTC): from its local midnight to the time asked.
Every window is [start, end) in UTC and never ends after the time asked.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc
_NUM_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30,
    "forty-five": 45, "couple of": 2, "few": 3,
}  # fmt: skip
_UNITS = {"minute": 1 / 60, "min": 1 / 60, "mins": 1 / 60, "hour": 1, "hr": 1, "hrs": 1, "h": 1, "day": 24, "week": 168}
_UNIT_NAMES = {"min": "minute", "mins": "minute", "hr": "hour", "hrs": "hour", "h": "hour"}
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_NUM = r"(\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|twelve|fifteen|twenty|thirty|forty-five|couple of|few)"


class TimeError(ValueError):
    """The time phrase could not be understood."""


@dataclass(frozen=True)
class Window:
    start: dt.datetime  # UTC, inclusive
    end: dt.datetime  # UTC, exclusive
    phrase: str  # what was understood ("last 2 hours")

    def describe(self) -> str:
        a, b = self.start, self.end
        if a.date() == b.date() or (b - a) <= dt.timedelta(hours=24):
            span = f"{a:%Y-%m-%d %H:%M}–{b:%H:%M} UTC" if a.date() == b.date() else f"{a:%Y-%m-%d %H:%M} – {b:%Y-%m-%d %H:%M} UTC"
        else:
            span = f"{a:%Y-%m-%d %H:%M} – {b:%Y-%m-%d %H:%M} UTC"
        return f"{self.phrase} → {span}"

    def shifted(self, days: int) -> Window:
        d = dt.timedelta(days=days)
        return Window(self.start + d, self.end + d, f"{self.phrase}, {abs(days)} days {'earlier' if days < 0 else 'later'}")


def parse_as_of(text: str | None, now: dt.datetime | None = None) -> dt.datetime:
    """``--as-of`` value (ISO 8601; a naive time is UTC) to an aware UTC time; default ``now``."""
    if not text:
        return (now or dt.datetime.now(UTC)).astimezone(UTC)
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise TimeError(f"--as-of {text!r}: use ISO 8601, e.g. 2026-11-18T10:00Z") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _n(word: str) -> float:
    return float(word) if word.isdigit() else float(_NUM_WORDS[word])


def _local_midnight(t: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    local = t.astimezone(tz)
    return dt.datetime(local.year, local.month, local.day, tzinfo=tz).astimezone(UTC)


def _clock(h: str, m: str | None, ampm: str | None) -> tuple[int, int]:
    hour, minute = int(h), int(m or 0)
    if ampm:
        ampm = ampm.replace(".", "")
        if hour == 12:
            hour = 0
        if ampm.startswith("p"):
            hour += 12
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise TimeError(f"{h}:{m or '00'} is not a time of day")
    return hour, minute


def find(text: str, as_of: dt.datetime, timezone: str = "UTC") -> tuple[Window | None, str]:
    """The first time phrase in ``text`` as a window, and the text with the phrase removed."""
    tz = ZoneInfo(timezone)
    t = text.lower()
    today0 = _local_midnight(as_of, tz)

    def win(a: dt.datetime, b: dt.datetime, phrase: str) -> Window:
        b = min(b, as_of)
        if a >= b:
            raise TimeError(f"{phrase!r} has not started yet at {as_of:%Y-%m-%d %H:%M} UTC")
        return Window(a, b, phrase)

    patterns: list[tuple[str, object]] = [
        # "last week" is the previous calendar week ("the past week" is the last 7 days)
        (r"\b(?:last week|previous week|the week before)\b",
         lambda m: (lambda w0: win(w0 - dt.timedelta(days=7), w0, "last week"))(today0 - dt.timedelta(days=as_of.astimezone(tz).weekday()))),
        (rf"\b(?:in |during |over |within )?(?:the )?(?:last|past|previous) {_NUM} ?(minute|min|mins|hour|hr|hrs|h|day|week)s?\b",
         lambda m: win(as_of - dt.timedelta(hours=_n(m[1]) * _UNITS[m[2]]), as_of, f"last {m[1]} {_UNIT_NAMES.get(m[2], m[2])}s")),
        (r"\b(?:in |during |over |within )?(?:the )?(?:last|past) (hour|day|week|minute)\b",
         lambda m: win(as_of - dt.timedelta(hours=_UNITS[m[1]]), as_of, f"last {m[1]}")),
        (rf"\b{_NUM} (hour|hr|day|minute|min)s? ago\b",
         lambda m: win(as_of - dt.timedelta(hours=_n(m[1]) * _UNITS[m[2]]), as_of, f"since {m[1]} {m[2]}s ago")),
        (r"\bsince (?:the start of |the beginning of )?(?:yesterday)\b",
         lambda m: win(today0 - dt.timedelta(days=1), as_of, "since yesterday")),
        (r"\bsince (\d{1,2})(?::(\d{2}))? ?(am|pm|a\.m\.|p\.m\.)?(?: today| this morning)?\b",
         lambda m: win(
             (lambda hm: (today0.astimezone(tz).replace(hour=hm[0], minute=hm[1])).astimezone(UTC))(_clock(m[1], m[2], m[3])),
             as_of, f"since {m[0].split(' ', 1)[1].strip()}")),
        (r"\bsince (?:midnight|the start of (?:the|business) day)\b", lambda m: win(today0, as_of, "since midnight")),
        (r"\bsince (monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b",
         lambda m: win(today0 - dt.timedelta(days=(as_of.astimezone(tz).weekday() - _WEEKDAYS.index(m[1])) % 7), as_of, f"since {m[1]}")),
        (r"\b(?:yesterday|the day before today)\b", lambda m: win(today0 - dt.timedelta(days=1), today0, "yesterday")),
        (r"\bbetween (\d{1,2})(?::(\d{2}))? ?(am|pm)? and (\d{1,2})(?::(\d{2}))? ?(am|pm)?(?: today)?\b",
         lambda m: win(
             (lambda hm: today0.astimezone(tz).replace(hour=hm[0], minute=hm[1]).astimezone(UTC))(_clock(m[1], m[2], m[3] or m[6])),
             (lambda hm: today0.astimezone(tz).replace(hour=hm[0], minute=hm[1]).astimezone(UTC))(_clock(m[4], m[5], m[6])),
             f"between {m[1]}{':' + m[2] if m[2] else ''}{m[3] or ''} and {m[4]}{':' + m[5] if m[5] else ''}{m[6] or ''}")),
        (r"\b(?:this morning)\b", lambda m: win(today0, today0 + dt.timedelta(hours=12), "this morning")),
        (r"\b(?:this afternoon)\b", lambda m: win(today0 + dt.timedelta(hours=12), today0 + dt.timedelta(hours=18), "this afternoon")),
        (r"\b(?:this evening|tonight)\b", lambda m: win(today0 + dt.timedelta(hours=18), today0 + dt.timedelta(days=1), "this evening")),
        (r"\b(?:last night|overnight)\b", lambda m: win(today0 - dt.timedelta(hours=6), today0 + dt.timedelta(hours=6), "last night")),
        (r"\b(?:today|so far today|this business day|this day|today's)\b", lambda m: win(today0, as_of, "today")),
        (r"\b(?:this week|so far this week|week to date)\b",
         lambda m: win(today0 - dt.timedelta(days=as_of.astimezone(tz).weekday()), as_of, "this week")),
        (r"\b(?:on )?(\d{4}-\d{2}-\d{2})\b",
         lambda m: (lambda d0: win(d0, d0 + dt.timedelta(days=1), m[1]))(
             dt.datetime.fromisoformat(m[1]).replace(tzinfo=tz).astimezone(UTC))),
        (r"\b(?:on |last )(monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b",
         lambda m: (lambda d0: win(d0, d0 + dt.timedelta(days=1), f"on {m[1]}"))(
             today0 - dt.timedelta(days=((as_of.astimezone(tz).weekday() - _WEEKDAYS.index(m[1])) % 7) or 7))),
        (r"\b(?:right now|currently|at the moment|now)\b", lambda m: win(as_of - dt.timedelta(minutes=15), as_of, "now (last 15 minutes)")),
    ]  # fmt: skip
    for pat, make in patterns:
        m = re.search(pat, t)
        if m:
            w = make(m)  # type: ignore[operator]
            return w, (text[: m.start()] + " " + text[m.end() :]).strip()
    return None, text


def resolve(phrase: str | None, as_of: dt.datetime, timezone: str = "UTC", default: str = "today") -> Window:
    """A time phrase (as an engine wrote it) to a window; ``default`` when none was given."""
    w, _ = find(phrase or default, as_of, timezone)
    if w is None:
        raise TimeError(
            f"could not understand the time {phrase!r}; say e.g. 'last 2 hours', 'today', 'yesterday', 'this week', 'since 9am' or a date"
        )
    return w
