"""Service-level breaches as alarms: a feed down, or stale past its SLA, for ``SLA_MINUTES`` minutes in a row.

The streaming detector judges a feed's staleness and message count against the feed's own recent values,
and those remember. An outage in the evening fills the next hours' history with staleness in the thousands
of seconds and counts of zero, so a delay of the same feed that night (staleness from 0.05 s to 45 minutes,
messages down by 85 %) is ordinary against it and scores nothing. A breach of the feed's staleness SLA needs
no history: the SLA is in the ontology (``staleness_sla_s``, carried by ``fct_feed_status.is_stale``), and a
feed past it is news whatever happened before. It is also what the alerts page on (``alerts.symptoms``), so
an alert and its incident rest on the same fact.

A breach alarms when it has lasted ``SLA_MINUTES`` minutes (that minute and the ones before it, every one
down or stale), at that minute and the next ``SLA_ALARMS - 1`` (an alarm that holds confirms its episode),
with score 1 on the feed: metric ``down`` (observed 1, usual 0) while the feed is down, else ``stale``
(observed the staleness in seconds, usual the SLA). It says that the breach began; the alert tracks it until
it clears. Alarms for every minute of a long breach would keep its episode open for as long, and gather into
it whatever else alarms nearby in the meantime (a pod's memory an hour later), which is not the breach. A
minute's verdict depends only on it and the minutes before it, so an hour-by-hour run gives what one run
gives. Plain Python; no Dagster.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pandas as pd

__all__ = ["SLA_ALARMS", "SLA_KINDS", "SLA_MINUTES", "SLA_SQL", "judge_sla_window", "sla_breaches"]

SLA_MINUTES = 3  # a feed must be down or stale this many minutes in a row (as the alerts page)
SLA_ALARMS = 3  # minutes of a breach that alarm, from the SLA_MINUTES-th on
SLA_KINDS = ("down", "stale")  # the kinds of its alarms (no other source uses them)
VERDICT_COLUMNS = ["series", "entity_id", "metric", "ts", "score", "kind", "baseline", "observed"]

# the feed minutes in [?, ?) (UTC, naive) with the feed's SLA
SLA_SQL = (
    "select 'feed:' || s.feed_id as entity_id, s.minute_ts as ts, s.is_up, s.is_stale, "
    "cast(s.staleness_s as double) as staleness_s, cast(f.staleness_sla_s as double) as sla_s "
    "from {marts}.fct_feed_status s left join {marts}.dim_feed f on s.feed_id = f.feed_id "
    "where s.minute_ts >= ? and s.minute_ts < ?"
)


def sla_breaches(minutes: pd.DataFrame, since: dt.datetime | pd.Timestamp | None = None) -> pd.DataFrame:
    """The alarms of ``minutes`` (columns ``entity_id, ts, is_up, is_stale, staleness_s, sla_s``, one row
    per feed and minute) at or after ``since``: the minutes of a breach (consecutive minutes down or stale)
    from its ``SLA_MINUTES``-th to its ``SLA_MINUTES + SLA_ALARMS - 1``-th. Returns the columns of
    ``VERDICT_COLUMNS`` (``ts`` naive UTC), time order."""
    rows: list[tuple] = []
    if len(minutes):
        m = minutes.copy()
        m["ts"] = pd.to_datetime(m["ts"])
        m = m.sort_values(["entity_id", "ts"], kind="stable")
        down = m["is_up"].astype("boolean").fillna(True).eq(False)
        stale = m["is_stale"].astype("boolean").fillna(False)
        m["bad"] = (down | stale).to_numpy(dtype=bool)
        m["down"] = down.to_numpy(dtype=bool)
        start = None if since is None else pd.Timestamp(since)
        if start is not None and start.tzinfo is not None:
            start = start.tz_convert("UTC").tz_localize(None)
        step = pd.Timedelta(minutes=1)
        for entity, g in m.groupby("entity_id", sort=True):
            run = 0
            prev = None
            for r in g.itertuples(index=False):
                run = (run + 1 if prev is not None and r.ts - prev == step else 1) if r.bad else 0
                prev = r.ts
                if not SLA_MINUTES <= run < SLA_MINUTES + SLA_ALARMS or (start is not None and r.ts < start):
                    continue
                if r.down:
                    rows.append((f"{entity}|down", entity, "down", r.ts, 1.0, "down", 0.0, 1.0))
                else:
                    rows.append(
                        (f"{entity}|stale", entity, "stale", r.ts, 1.0, "stale", float(r.sla_s), float(r.staleness_s))
                    )
    df = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    df = df.astype({"series": str, "entity_id": str, "metric": str, "kind": str, "score": float, "baseline": float, "observed": float})
    df["ts"] = pd.to_datetime(df["ts"])
    return df.sort_values(["ts", "series"], kind="stable").reset_index(drop=True)


def judge_sla_window(
    query: Callable[[str, list], pd.DataFrame],
    start: dt.datetime,
    end: dt.datetime,
    marts_schema: str = "marts",
) -> tuple[pd.DataFrame, int, int]:
    """The SLA alarms of the feed minutes in [start, end), reading the minutes before ``start`` that decide
    whether a breach under way at ``start`` alarms there. Returns the alarms (see :func:`sla_breaches`), the number
    of feed minutes judged and the number of feeds."""

    def naive(t: dt.datetime) -> dt.datetime:
        return t.astimezone(dt.timezone.utc).replace(tzinfo=None)

    back = dt.timedelta(minutes=SLA_MINUTES + SLA_ALARMS - 1)  # a breach's length, up to the last that alarms
    minutes = query(SLA_SQL.format(marts=marts_schema), [naive(start) - back, naive(end)])
    verdicts = sla_breaches(minutes, since=naive(start))
    mine = minutes[pd.to_datetime(minutes["ts"]) >= naive(start)]
    return verdicts, len(mine), int(mine["entity_id"].nunique())
