"""How many pages the detector's alarms would make, alone and grouped into episodes, on a simulated month.

    .venv/bin/python benchmarks/rca_eval.py --keep /tmp/rca-month      # build a month once (see that script)
    .venv/bin/python benchmarks/alarm_episodes.py /tmp/rca-month        # then count, in seconds

Reads ``intelligence.anomalies`` of the kept build and the simulator's labels, groups the alarms with
``cms_dagster.detect.episodes.label_alarms`` (the rule of ``cms detect alarms``: alarms at most 30 minutes
apart on related entities; confirmed when they span two entities that depend on one another or one scores 0.99 and that series alarms
again after it (``--repeat-run N``: or is at the alarm level, an alarm or a repeat the detector's quiet
period damped, at every minute of the N minutes after it), counting no alarm on a resource while a stage working on it ran as usual: ``--no-work`` counts those too,
no sure score on an entity the detector had watched for less than a day: ``--no-learning`` counts those
too, and no trend alarm, kind drift: ``--trends-corroborate`` counts those too), and prints, for the
whole month and outside every incident's search window ([label start - 30 min, label end + 3 h)): alarms
per hour, episodes, confirmed episodes per hour, and how many incidents have a confirmed episode in their
window (and how many of those begin on the root or an entity the simulator records as affected); then the
same without the schedule: confirmed episodes every one of whose entities had a confirmed episode at the
same time of day on 2 of the 3 days before, or on the same weekday both of the two weeks before
(``explained_by_schedule``, the rule of ``cms detect alarms``, the incidents and ``cms rca incident
--latest``), per day outside incidents; then the headline: confirmed episodes per day that are not the
schedule, injected incidents detected (job failures apart) and false episodes per day; and one line per
incident no confirmed episode on its own entities found: the highest score stored on its root or an affected
entity in its window, and for a feed how many runs of the jobs that read it began while the fault lasted.

Measure on months never used while tuning: the detector's run judging and episode rules were developed on
seed 20270104 (``rca_eval.py --seed 20270104 --keep DIR``); the held-out months are the seeds 20270501 and
20270601 (``rca_eval.py --keep DIR``, its default seed, and ``--seed 20270601``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import pandas as pd

from cms_dagster.detect.episodes import (
    ALARM_ROWS,
    DEFAULT_GAP,
    DEFAULT_MIN_ENTITIES,
    DEFAULT_PERSIST,
    DEFAULT_REPEAT_RUN,
    DEFAULT_SURE_SCORE,
    LEARNING,
    WORK_SQL,
    explained_by_schedule,
    explained_by_work,
    group_alarms,
    label_alarms,
    learning,
    read_first_seen,
    read_ranges,
)
from cms_dagster.domain import load_ontology
from cms_dagster.simulate.incidents import parse_time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("home", type=Path, help="a build kept by benchmarks/rca_eval.py --keep")
    p.add_argument(
        "--no-work",
        action="store_true",
        help="count alarms on resources that normal scheduled work explains as news too (the rule before it)",
    )
    p.add_argument(
        "--repeat-run",
        type=int,
        default=DEFAULT_REPEAT_RUN,
        metavar="MINUTES",
        help="a sure alarm also holds when its series is at the alarm level (an alarm, or a repeat the detector's "
        "quiet period damped) at every minute of this many minutes after it (default %(default)s: repeats not read)",
    )
    p.add_argument(
        "--no-learning",
        action="store_true",
        help="let a sure score confirm on an entity the detector has watched for less than a day too (the rule "
        "before it)",
    )
    p.add_argument(
        "--trends-corroborate",
        action="store_true",
        help="let trend alarms (kind drift) corroborate like any other (the rule before it)",
    )
    args = p.parse_args(argv)
    explain = not args.no_work
    import duckdb

    db = args.home / "warehouse.duckdb"
    labels_file = next((args.home / "lake" / "archive" / "simulations").glob("*/labels.json"), None)
    if not db.exists() or labels_file is None:
        print(
            f"{args.home} is not a kept rca_eval build (no warehouse.duckdb or labels.json)", file=sys.stderr
        )
        return 2
    con = duckdb.connect(str(db), read_only=True)
    # the alarms, and with --repeat-run the detector's damped repeats (they join no episode)
    rows = ALARM_ROWS if args.repeat_run else "is_alarm"
    alarms = con.execute(
        f"select ts, series, entity_id, metric, score, kind, is_alarm, observed, observed - baseline as delta from intelligence.anomalies where {rows} order by ts"
    ).df()
    # every stored point (scores of 0.3 and more, and repeats): what a missed incident looked like
    stored = con.execute("select ts, series, entity_id, score from intelligence.anomalies").df()
    try:
        job_starts = con.execute(
            "select 'job:' || job_key as entity_id, actual_start_ts from marts.fct_batch_runs"
        ).df()
    except duckdb.Error:  # a build without job runs
        job_starts = pd.DataFrame(columns=["entity_id", "actual_start_ts"])
    span = con.execute("select min(minute_ts), max(minute_ts) from marts.fct_infra_metrics").fetchone()
    def query(sql: str, params: list) -> pd.DataFrame:
        return con.execute(sql, params).df()

    # the week's ranges and each entity's first minute, read as `cms detect alarms` reads them, over all the data
    everything = (dt.datetime(1971, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc))
    ranges = read_ranges(query, *everything)
    try:
        runs = con.execute(WORK_SQL.format(marts="marts"), [pd.Timestamp(0), pd.Timestamp.max]).df()
    except duckdb.Error:  # a build without stage runs
        runs = pd.DataFrame(columns=["entity_id", "started_ts", "finished_ts"])
    first_seen = read_first_seen(query, *everything)
    con.close()
    hours = (pd.Timestamp(span[1]) - pd.Timestamp(span[0])).total_seconds() / 3600
    labels = sorted(json.loads(labels_file.read_text())["incidents"], key=lambda x: x["start"])
    edges = load_ontology().dependency_edges()
    if explain:
        alarms = alarms.assign(explained=explained_by_work(alarms, runs, edges, ranges=ranges).to_numpy())
    if args.trends_corroborate:
        alarms = alarms.drop(columns=["kind"])
    if not args.no_learning:
        alarms = alarms.assign(learning=learning(alarms, first_seen).to_numpy())
    lab = label_alarms(alarms, edges, repeat_run=args.repeat_run)
    windows = []
    for k, inc in enumerate(labels):
        lo = pd.Timestamp(parse_time(inc["start"]) - dt.timedelta(minutes=30))
        hi = pd.Timestamp(parse_time(inc["end"]) + dt.timedelta(hours=3))
        if k + 1 < len(labels):
            hi = min(hi, pd.Timestamp(parse_time(labels[k + 1]["start"]) - dt.timedelta(minutes=30)))
        windows.append((lo, hi))
    inside = pd.Series(False, index=lab.index)
    for lo, hi in windows:
        inside |= (lab["ts"] >= lo) & (lab["ts"] < hi)
    covered = sum((hi - lo).total_seconds() for lo, hi in windows) / 3600
    firsts = lab.groupby("episode").head(1)
    confirmed = firsts[firsts["confirmed"]]
    bg_alarms = int((~inside).sum())
    bg_conf = int((~inside[confirmed.index]).sum())
    found = related = 0
    for inc, (lo, hi) in zip(labels, windows, strict=True):
        ids = affected(inc)
        mine = lab[(lab["ts"] >= lo) & (lab["ts"] < hi) & lab["confirmed"]]
        if len(mine):
            found += 1
            related += bool(set(lab[lab["episode"] == mine["episode"].iloc[0]]["entity_id"]) & ids)
    print(f"alarm episodes in {args.home} ({len(labels)} incidents, {hours:.0f} hours of data)")
    print(
        f"  rule: alarms at most {DEFAULT_GAP.total_seconds() / 60:g} min apart on related entities; confirmed "
        f"from {DEFAULT_MIN_ENTITIES} entities that depend on one another or a score of {DEFAULT_SURE_SCORE:g} whose series has "
        f"{DEFAULT_PERSIST} alarms or more from it on"
        + (
            f", or an alarm or a damped repeat at each of the {args.repeat_run} minutes after it"
            if args.repeat_run
            else ""
        )
        + (
            "; alarms on a resource while a stage working on it ran as usual corroborate nothing"
            if explain
            else ""
        )
        + ("" if args.trends_corroborate else "; trends (kind drift) corroborate nothing")
        + (
            ""
            if args.no_learning
            else f"; a sure score counts once its entity has been watched for {LEARNING.total_seconds() / 3600:g} h"
        )
    )
    print(
        f"  whole month: {len(lab):,} alarms ({len(lab) / hours:.1f}/hour), {lab['episode'].nunique():,} episodes, "
        f"{len(confirmed):,} confirmed ({len(confirmed) / hours:.2f}/hour)"
    )
    quiet = max(hours - covered, 1e-9)
    print(
        f"  outside the incidents' windows ({quiet:.0f} hours): {bg_alarms:,} alarms = {bg_alarms / quiet:.1f}/hour; "
        f"{bg_conf:,} confirmed episodes = {bg_conf / quiet:.2f}/hour ({bg_alarms / max(bg_conf, 1):.0f}x fewer than alarms)"
    )
    print(
        f"  incidents with a confirmed episode in their window: {found}/{len(labels)}; the first such episode "
        f"includes the root or an affected entity: {related}/{found}"
    )
    # the schedule: confirmed episodes that recur at the same time of day on 2 of the 3 days before, or on
    # the same weekday both weeks before (what `cms detect alarms` marks 'schedule')
    episodes = group_alarms(alarms, edges, repeat_run=args.repeat_run)
    news = [e for e in episodes if e.confirmed and not explained_by_schedule(e, episodes)]

    def in_window(t: pd.Timestamp) -> bool:
        return any(lo <= t < hi for lo, hi in windows)

    bg_news = sum(not in_window(e.start) for e in news)
    hits = [any(lo <= e.start < hi for e in news) for lo, hi in windows]
    # an episode in the window may be a coincidence (a feed blip during a database fault): the fault's own
    # episode alarms on its root or on something the simulator marks affected
    own = [
        any(lo <= e.start < hi and set(e.entities) & affected(inc) for e in news)
        for inc, (lo, hi) in zip(labels, windows, strict=True)
    ]
    by_kind: dict[str, list[bool]] = {}
    for inc, hit in zip(labels, hits, strict=True):
        by_kind.setdefault(inc["kind"], []).append(hit)
    days = hours / 24
    print(
        f"  without the schedule (confirmed episodes that recur at the same time of day on 2 of the 3 days "
        f"before, or on the same weekday both weeks before): {len(news):,} confirmed; outside the incidents' "
        f"windows {bg_news:,} = {bg_news / quiet * 24:.1f}/day; incidents with one in their window: "
        f"{sum(hits)}/{len(labels)}"
    )
    print("  per kind: " + ", ".join(f"{k} {sum(v)}/{len(v)}" for k, v in sorted(by_kind.items())))
    print("headline (what `cms detect alarms` shows as news: confirmed, not the schedule)")
    print(f"  confirmed episodes per day: {len(news) / days:.1f}")
    print(
        f"  injected incidents detected: {sum(hits)}/{len(labels)} ({sum(hits) / max(len(labels), 1):.0%}); "
        f"job failures {sum(by_kind.get('job_failure', []))}/{len(by_kind.get('job_failure', []))}; by an "
        f"episode on the root or an affected entity {sum(own)}/{len(labels)} ({sum(own) / max(len(labels), 1):.0%})"
    )
    print(f"  false episodes per day (outside every incident's window): {bg_news / quiet * 24:.2f}")
    ontology = load_ontology()
    for inc, (lo, hi), hit in zip(labels, windows, own, strict=True):
        if not hit:
            print("  missed: " + describe_miss(inc, lo, hi, stored, job_starts, ontology))
    return 0


def describe_miss(
    inc: dict, lo: pd.Timestamp, hi: pd.Timestamp, stored: pd.DataFrame, job_starts: pd.DataFrame, ontology
) -> str:
    """One line on an incident no confirmed episode on its own entities found: its highest stored score on
    the root or an affected entity in its window, and, for a feed, how many runs of the jobs that read it
    began between the label's start and end (a run that began then is where the fault shows downstream)."""
    ids = affected(inc)
    start, end = pd.Timestamp(parse_time(inc["start"])), pd.Timestamp(parse_time(inc["end"]))
    ts = pd.to_datetime(stored["ts"], utc=True)  # the warehouse stores naive UTC
    mine = stored[stored["entity_id"].isin(ids) & (ts >= lo) & (ts < hi)]
    text = f"{inc.get('id', '?')} {inc['kind']} on {inc['root_cause']} at {start:%Y-%m-%d %H:%M}: "
    if len(mine):
        top = mine.loc[mine["score"].idxmax()]
        text += (
            f"highest score {top['score']:.2f} ({top['series']}, "
            f"{(pd.Timestamp(top['ts'], tz='UTC') - start).total_seconds() / 60:+.0f} min)"
        )
    else:
        text += "no stored score on its root or an affected entity"
    if inc["root_cause"].startswith("feed:"):
        readers = {j.entity_id for j in ontology.jobs_needing_feed(inc["root_cause"].split(":", 1)[1])}
        t = pd.to_datetime(job_starts["actual_start_ts"], utc=True)
        n = int((job_starts["entity_id"].isin(readers) & (t >= start) & (t < end)).sum())
        text += f"; runs of the {len(readers)} jobs that read it begun during it: {n}"
    return text


def affected(inc: dict) -> set[str]:
    """The label's root and everything the simulator records as affected by it."""
    return {inc["root_cause"], *inc["affected_jobs"], *inc["affected_stages"]} | {
        *inc["affected_resources"],
        *inc["affected_feeds"],
    }


if __name__ == "__main__":
    sys.exit(main())
