"""The dashboard's filters and their URL form (deep links).

A page's filters live in the URL's query parameters, so an alert can link straight to a page with its
filters set, e.g. ``/batches?range=24h&asset_class=fx`` or ``/stages?job=derivatives.eod_valuation&day=2026-11-20``
or ``/feeds?range=6h&end=2026-11-18T14:00Z&feed=cme-mdp``. Unknown or malformed values are dropped with a
one-line message; they never reach SQL other than as parameters.

Plain Python; no Streamlit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace

import pandas as pd

from cms_dagster.domain.model import Ontology

RANGES: dict[str, pd.Timedelta] = {
    "6h": pd.Timedelta(hours=6),
    "24h": pd.Timedelta(hours=24),
    "7d": pd.Timedelta(days=7),
    "30d": pd.Timedelta(days=30),
}
DEFAULT_RANGE = "24h"
# the query parameters the dashboard understands (all pages share them; a page ignores what it does not use)
PARAMS = ("range", "end", "asset_class", "job", "feed", "day", "run", "stage", "at", "incident", "q")


@dataclass(frozen=True)
class Filters:
    """What the user is looking at. ``end`` None means 'up to the latest data'."""

    range: str = DEFAULT_RANGE
    end: pd.Timestamp | None = None
    asset_class: str | None = None
    job: str | None = None
    feed: str | None = None
    day: dt.date | None = None
    run: str | None = None
    stage: str | None = None
    at: pd.Timestamp | None = None
    incident: str | None = None  # an incident report's id
    q: str | None = None  # the Ask page's question

    def window(self, latest: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
        """[start, end) of the time range, ending at ``end`` or just after the latest data."""
        end = self.end if self.end is not None else _ceil_minute(latest)
        return end - RANGES[self.range], end

    def jobs(self, ontology: Ontology) -> list[str]:
        """The job keys in scope: the chosen job, else the chosen asset class's jobs, else all."""
        if self.job:
            return [self.job]
        return sorted(k for k, j in ontology.jobs.items() if not self.asset_class or j.asset_class == self.asset_class)

    def feeds(self, ontology: Ontology) -> list[str]:
        """The feeds in scope: the chosen feed, else the feeds the jobs in scope need, else all."""
        if self.feed:
            return [self.feed]
        if self.asset_class or self.job:
            return sorted({f for k in self.jobs(ontology) for f in ontology.jobs[k].feeds})
        return sorted(ontology.feeds)

    def to_params(self) -> dict[str, str]:
        """The non-default filters as URL query parameters."""
        out: dict[str, str] = {}
        if self.range != DEFAULT_RANGE:
            out["range"] = self.range
        for name in ("asset_class", "job", "feed", "run", "stage", "incident", "q"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.end is not None:
            out["end"] = _iso(self.end)
        if self.at is not None:
            out["at"] = _iso(self.at)
        if self.day is not None:
            out["day"] = self.day.isoformat()
        return out


def _ceil_minute(t: pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(t).floor("min") + pd.Timedelta(minutes=1)


def _iso(t: pd.Timestamp) -> str:
    return pd.Timestamp(t).strftime("%Y-%m-%dT%H:%MZ")


def parse_time(text: str) -> pd.Timestamp:
    """An ISO-8601 time (``2026-11-18T14:00Z``, ``2026-11-18 14:00``) as naive UTC; ValueError if not one."""
    try:
        t = pd.Timestamp(text.strip().replace("Z", "+00:00"))
    except (ValueError, TypeError):
        raise ValueError(f"{text!r} is not an ISO-8601 time (e.g. 2026-11-18T14:00Z)") from None
    if pd.isna(t):
        raise ValueError(f"{text!r} is not an ISO-8601 time (e.g. 2026-11-18T14:00Z)")
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t


def from_params(params: Mapping[str, str], ontology: Ontology) -> tuple[Filters, list[str]]:
    """Filters from URL query parameters, and a message for each value that was dropped."""
    problems: list[str] = []
    f = Filters()

    def get(name: str) -> str:
        value = params.get(name)
        if isinstance(value, list | tuple):
            value = value[-1] if value else ""
        return str(value or "").strip()

    if rng := get("range"):
        if rng in RANGES:
            f = replace(f, range=rng)
        else:
            problems.append(f"range={rng!r} is not one of {', '.join(RANGES)}; showing {DEFAULT_RANGE}")
    for name in ("end", "at"):
        if text := get(name):
            try:
                f = replace(f, **{name: parse_time(text)})
            except ValueError as e:
                problems.append(f"{name}: {e}; ignored")
    if day := get("day"):
        try:
            f = replace(f, day=dt.date.fromisoformat(day))
        except ValueError:
            problems.append(f"day={day!r} is not a date (e.g. 2026-11-18); showing the latest day")
    if ac := get("asset_class"):
        if ac in ontology.asset_classes:
            f = replace(f, asset_class=ac)
        else:
            problems.append(f"asset_class={ac!r} is not in the ontology ({', '.join(ontology.asset_classes)}); ignored")
    if job := get("job"):
        if job in ontology.jobs:
            f = replace(f, job=job)
            if f.asset_class and ontology.jobs[job].asset_class != f.asset_class:
                problems.append(f"job {job} is not a {f.asset_class} job; showing it anyway")
        else:
            problems.append(f"job={job!r} is not in the ontology (asset_class.job, e.g. {next(iter(ontology.jobs))}); ignored")
    if feed := get("feed"):
        if feed in ontology.feeds:
            f = replace(f, feed=feed)
        else:
            problems.append(f"feed={feed!r} is not in the ontology ({', '.join(ontology.feeds)}); ignored")
    if run := get("run"):
        f = replace(f, run=run[:200])  # matched against the runs of the day, never put into SQL text
    if stage := get("stage"):
        f = replace(f, stage=stage[:100])
    if incident := get("incident"):
        f = replace(f, incident=incident[:100])
    if q := get("q"):
        f = replace(f, q=q[:500])  # a question for the Ask page: parsed by the question engine, never SQL
    return f, problems
