"""SLA breaches are alarms by rule: a feed down or stale past its SLA for SLA_MINUTES minutes in a row alarms
at that minute and the next SLA_ALARMS - 1."""

import datetime as dt

import duckdb
import pandas as pd

from cms_dagster.detect.sla import SLA_ALARMS, SLA_MINUTES, judge_sla_window, sla_breaches

T0 = pd.Timestamp("2026-11-20 03:00")
U = dt.timezone.utc


def _minutes(feed: str, n: int, down: set[int] = frozenset(), stale: set[int] = frozenset()) -> pd.DataFrame:
    idx = range(n)
    return pd.DataFrame(
        {
            "entity_id": f"feed:{feed}",
            "ts": [T0 + pd.Timedelta(minutes=i) for i in idx],
            "is_up": [i not in down for i in idx],
            "is_stale": [i in stale for i in idx],
            "staleness_s": [60.0 * (i - min(stale)) + 60 if i in stale else 0.05 for i in idx],
            "sla_s": 30.0,
        }
    )


def test_a_breach_alarms_at_its_third_fourth_and_fifth_minute() -> None:
    m = _minutes("refinitiv-elektron", 30, stale=set(range(10, 20)))
    out = sla_breaches(m)
    assert (SLA_MINUTES, SLA_ALARMS) == (3, 3)
    # that it began, and held: not every minute of it (the alert tracks it until it clears)
    assert out["ts"].tolist() == [T0 + pd.Timedelta(minutes=i) for i in (12, 13, 14)]
    assert set(out["series"]) == {"feed:refinitiv-elektron|stale"}
    assert (out["score"] == 1.0).all() and (out["kind"] == "stale").all()
    first = out.iloc[0]
    assert first["baseline"] == 30.0 and first["observed"] == 180.0  # the SLA, and the staleness then


def test_short_breaches_and_gaps_do_not_alarm() -> None:
    two = _minutes("ebs-fx", 20, stale={5, 6, 10, 11})  # two breaches of two minutes each
    assert sla_breaches(two).empty
    gap = _minutes("ebs-fx", 20, stale={5, 6, 7}).drop(index=6)  # minute 6 missing: not three in a row
    assert sla_breaches(gap).empty


def test_a_feed_down_alarms_as_down_and_feeds_are_judged_apart() -> None:
    m = pd.concat([_minutes("cme-mdp", 10, down={2, 3, 4, 5}), _minutes("ice-data", 10, stale={3, 4})])
    out = sla_breaches(m)
    assert out["series"].tolist() == ["feed:cme-mdp|down", "feed:cme-mdp|down"]  # minutes 4 and 5
    assert out["observed"].tolist() == [1.0, 1.0] and out["baseline"].tolist() == [0.0, 0.0]


def test_hour_by_hour_gives_what_one_run_gives_across_the_boundary() -> None:
    # breaches from 03:55 to 04:10 (alarms 03:57 to 03:59: none after 04:00, though the 04:00 hour sees only
    # its tail) and from 03:59 to 04:06 on another feed (alarms 04:01 to 04:03, though it began before 04:00)
    m = pd.concat(
        [
            _minutes("refinitiv-elektron", 120, stale=set(range(55, 71))),
            _minutes("ebs-fx", 120, stale=set(range(59, 67))),
        ]
    )
    feed = pd.DataFrame(
        {
            "feed_id": m["entity_id"].str.removeprefix("feed:"),
            "minute_ts": m["ts"],
            "is_up": m["is_up"],
            "is_stale": m["is_stale"],
            "staleness_s": m["staleness_s"],
        }
    )
    con = duckdb.connect()
    con.execute("create schema marts")
    con.register("f", feed)
    con.execute("create table marts.fct_feed_status as select * from f")
    con.execute(
        "create table marts.dim_feed as select * from (values ('refinitiv-elektron', 30), ('ebs-fx', 30)) "
        "as t(feed_id, staleness_sla_s)"
    )

    def query(sql: str, params: list) -> pd.DataFrame:
        return con.execute(sql, params).df()

    start = dt.datetime(2026, 11, 20, 3, tzinfo=U)
    whole, minutes, feeds = judge_sla_window(query, start, start + dt.timedelta(hours=2))
    hours = [judge_sla_window(query, start + dt.timedelta(hours=h), start + dt.timedelta(hours=h + 1))[0] for h in (0, 1)]
    assert (minutes, feeds) == (240, 2)
    at = [pd.Timestamp(f"2026-11-20 {t}") for t in ("03:57", "03:58", "03:59", "04:01", "04:02", "04:03")]
    assert whole["ts"].tolist() == at
    assert whole["entity_id"].tolist() == ["feed:refinitiv-elektron"] * 3 + ["feed:ebs-fx"] * 3
    pd.testing.assert_frame_equal(pd.concat(hours, ignore_index=True), whole)
