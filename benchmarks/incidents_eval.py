"""Incident reports and alerts on a simulated month: reports per incident, their top cause, pages per day,
paging latency, and the narrative checks on the offline engine and on an OpenAI stand-in's answers.

    .venv/bin/python benchmarks/incidents_eval.py                      # seed 20270701, 64 incidents, 30 days
    .venv/bin/python benchmarks/incidents_eval.py --keep /tmp/inc-month  # keep the build
    .venv/bin/python benchmarks/incidents_eval.py --reuse /tmp/inc-month # measure again on a kept build
    .venv/bin/python benchmarks/incidents_eval.py --reuse /tmp/inc-month --redetect --seed S --days D  # detect again first

The month is built as benchmarks/rca_eval.py builds it (simulate with sampled incidents -> lake -> DuckDB ->
dbt -> one detection pass). Seed 20270701 was never used while the incident, narrative or alert code was
written. Then, with the product's own functions:

1. **Reports.** The incidents (``cms_dagster.incidents.grouping.incidents_between``: confirmed alarm
   episodes grouped through the ontology and time, one report each, ids from ``incident_id``; episodes the
   schedule explains open none) over the whole month. An incident **matches** an injected one when it is
   about it, as an operator reading both would say: one of its confirmed episodes alarmed on the label's
   root or on something the label marks affected (the resources, feeds, jobs and stages the simulator
   moved) and its alarms overlap the injected incident's window ([label start - 30 min, label end + 3 h),
   cut at the next incident: a late run or a restarting pod alarms after the fault ends). An episode on a
   neighbour the fault did not move (a feed that the failed job reads, another feed alarming while one is
   delayed) is a separate episode, not a second report of the fault. Printed: injected incidents with
   exactly one / no / several matching reports, the reports matching no injected incident (total and per
   day: the detector's false episodes that still make a report), and, for comparison, the counts with the
   looser rule used before (an episode starting in the window on anything related in the ontology to the
   root or the affected) and by time alone (every incident with an episode starting in the window); the top
   cause of each injected incident's first matching report against the label (root entity); every such
   report built with ``build_report`` (offline engine) and checked: cited evidence ids exist; and the
   confirmed episodes the schedule explained, with the injected incidents that had one in their window
   (on a related entity) and got no report (lost to the schedule).
2. **Narratives from a model.** The same packs through ``write_narrative`` with the real openai client against
   the OpenAI stand-in (``cms_harness.openai_standin``), which answers with a plausible narrative and, every
   third request, cites an evidence id that does not exist: the share of kept narratives citing only
   existing evidence, and how many were retried or replaced by the offline engine.
3. **Alerts as if live.** ``collect_alerts`` + ``dispatch`` every 10 simulated minutes over the month (a
   6-hour look-back; state and outbox in the build's lake), with the packaged rules. Printed: pages (firing
   messages with page=true) per simulated day outside every incident window, and for incidents whose window
   holds a symptom (a feed down or stale past its SLA, a run failed or late) the share paged, and paged
   within 10 minutes of the symptom's data time.

Aims (issue): one report per incident; top cause as rca_eval; <= 1 page a day outside incidents; >= 95 % of
incidents with a symptom paged within 10 minutes; 100 % of stored reports cite only existing evidence.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rca_eval import build, detect, environment, say  # noqa: E402 (the same month build as the RCA evaluation)

from cms_dagster import settings as settings_mod  # noqa: E402
from cms_dagster.alerts.channels import OutboxChannel  # noqa: E402
from cms_dagster.alerts.router import AlertStore, dispatch  # noqa: E402
from cms_dagster.alerts.rules import load_rules  # noqa: E402
from cms_dagster.alerts.run import collect_alerts  # noqa: E402
from cms_dagster.detect.episodes import Episode  # noqa: E402
from cms_dagster.domain import load_ontology  # noqa: E402
from cms_dagster.incidents.grouping import Relations, explained_between, incidents_between  # noqa: E402
from cms_dagster.incidents.narrative import offline_narrative, write_narrative  # noqa: E402
from cms_dagster.incidents.report import build_report, incident_id  # noqa: E402
from cms_dagster.lake import Lake  # noqa: E402
from cms_dagster.llm import OfflineLlm, OpenAiLlm  # noqa: E402
from cms_dagster.simulate.incidents import Incident  # noqa: E402
from cms_dagster.warehouse.client import from_settings  # noqa: E402
from cms_harness.openai_standin import OpenAiStandIn  # noqa: E402
from cms_harness.rca_evaluation import SamplingSettings, sample_incidents, search_windows  # noqa: E402

UTC = dt.timezone.utc
LABELS = "incidents-eval-labels.json"


def _data_span(home: Path) -> tuple[dt.datetime, dt.datetime]:
    """The first and last minute of the kept build's metrics (UTC)."""
    import duckdb

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        lo, hi = con.execute("select min(minute_ts), max(minute_ts) from marts.fct_infra_metrics").fetchone()
    finally:
        con.close()
    return lo.replace(tzinfo=UTC), hi.replace(tzinfo=UTC)


def _load_incidents(path: Path) -> list[Incident]:
    out = []
    for d in json.loads(path.read_text()):
        out.append(
            Incident(
                kind=d["kind"], root_cause=d["root_cause"], start=dt.datetime.fromisoformat(d["start"].replace("Z", "+00:00")),
                end=dt.datetime.fromisoformat(d["end"].replace("Z", "+00:00")), id=d["id"],
                affected_jobs=set(d["affected_jobs"]), affected_stages=set(d["affected_stages"]),
                affected_feeds=set(d["affected_feeds"]), affected_resources=set(d["affected_resources"]),
            )
        )
    return out


def _truth(inc: Incident) -> set[str]:
    return {inc.root_cause} | inc.affected_resources | inc.affected_feeds | inc.affected_jobs | inc.affected_stages


def about(episode: Episode, a: pd.Timestamp, b: pd.Timestamp, truth: set[str]) -> bool:
    """Whether a confirmed episode is about an injected incident: its alarms overlap the incident's window
    [a, b) and it alarmed on the root or on something the label marks affected."""
    return episode.confirmed and episode.start < b and episode.end >= a and bool(truth & set(episode.entities))


def reports(home: Path, incidents: list[Incident]) -> tuple[list[dict], list[dict], dict]:
    cfg = settings_mod.load(environment(home))
    wh = from_settings(cfg)
    ont = load_ontology()
    rel = Relations(ont.dependency_edges())
    windows = search_windows(incidents)
    lo = min(w[0] for w in windows)
    hi = max(w[1] for w in windows)
    found = incidents_between(wh.query, lo, hi, ont, relations=rel)
    explained = explained_between(wh.query, lo, hi, ont, relations=rel)
    until = pd.Timestamp(hi).tz_convert("UTC") + pd.Timedelta(hours=3)
    rows, built, matched = [], [], set()
    llm = OfflineLlm()
    for inc, (a, b) in zip(incidents, windows, strict=True):
        a, b = pd.Timestamp(a), pd.Timestamp(b)
        truth = _truth(inc)
        mine = [k for k, g in enumerate(found) if any(about(e, a, b, truth) for e in g.episodes)]
        related = [g for g in found if any(e.confirmed and a <= e.start < b and rel.close(e.entities, truth) for e in g.episodes)]
        by_time = [g for g in found if any(e.confirmed and a <= e.start < b for e in g.episodes)]
        matched |= set(mine)
        row = {
            "id": inc.id, "kind": inc.kind, "root": inc.root_cause, "reports": len(mine), "related": len(related),
            "by_time": len(by_time), "top": None, "hit": False,
        }
        row["schedule"] = sum(a <= e.start < b and rel.close(e.entities, truth) for e in explained)
        if mine:
            first = found[mine[0]].as_episode()
            report = build_report(wh.query, first, ont, llm, until=until, marts_schema=wh.marts)
            built.append(report)
            row["top"] = report["root_cause"]["entity"]
            row["hit"] = row["top"] == inc.root_cause
            row["report"] = incident_id(first)
            row["episodes"] = [len(found[k].episodes) for k in mine]
        rows.append(row)
    days = (pd.Timestamp(hi) - pd.Timestamp(lo)) / pd.Timedelta(days=1)
    unmatched = [g for k, g in enumerate(found) if k not in matched and pd.Timestamp(lo) <= g.start < pd.Timestamp(hi)]
    stats = {
        "incidents": len(found), "unmatched": len(unmatched), "days": round(days, 1),
        "episodes": sum(e.confirmed for g in found for e in g.episodes), "explained": len(explained),
    }
    return rows, built, stats


def _pack_of(report: dict) -> dict:
    return {
        "incident_id": report["id"], "start": report["start"], "status": report["status"],
        "alarms": report["episode"]["alarms"], "entities": report["episode"]["entities"],
        "candidates": report["causes"], "evidence": report["evidence"], "blast_radius": report["blast_radius"],
        "remediation": report["remediation"],
    }


def model_narratives(built: list[dict]) -> dict:
    import openai

    count = {"n": 0}

    def answer(request: dict) -> dict:
        count["n"] += 1
        user = request["messages"][1]["content"]
        pack = json.loads(user[user.index("{"):].split("\n\nYour previous answer")[0])
        n = offline_narrative(pack)
        if count["n"] % 3 == 0:  # a model that sometimes invents evidence
            n = {**n, "evidence_ids": [*n["evidence_ids"], "E999"]}
        return n

    kept, only_existing, retried, fallback = 0, 0, 0, 0
    with OpenAiStandIn(answer=answer) as api:
        llm = OpenAiLlm(openai.OpenAI(api_key=api.api_key, base_url=api.base_url, max_retries=0), model="standin")
        for r in built:
            pack = _pack_of(r)
            out = write_narrative(llm, pack)
            kept += 1
            ids = {e["id"] for e in pack["evidence"]}
            only_existing += set(out.narrative["evidence_ids"]) <= ids
            retried += out.attempts > 1
            fallback += out.engine == "offline"
    return {"narratives": kept, "only_existing": only_existing, "retried": retried, "offline_fallback": fallback, "requests": len(api.requests)}


def alerts_live(home: Path, incidents: list[Incident], s: SamplingSettings, step: pd.Timedelta) -> dict:
    cfg = settings_mod.load(environment(home))
    wh = from_settings(cfg)
    ont = load_ontology()
    archive = Lake.from_settings(cfg).archive
    for key in list(archive.list("alerts/")):
        archive.delete(key)
    store = AlertStore(archive)
    outbox = OutboxChannel(archive)
    rules = load_rules()
    t = pd.Timestamp(s.start) + pd.Timedelta(days=1)
    end = pd.Timestamp(s.start) + pd.Timedelta(days=s.days)
    n = 0
    while t <= end:
        alerts = collect_alerts(wh.query, ont, (t - pd.Timedelta(hours=6)).to_pydatetime(), t, marts_schema=wh.marts)
        dispatch(alerts, rules, store, {"outbox": outbox}, t, sleep=lambda _: None)
        n += 1
        if n % 144 == 0:
            say(f"    alerts evaluated through {t:%Y-%m-%d %H:%M}")
        t += step
    messages = outbox.read()
    windows = [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in search_windows(incidents)]

    def inside(at: pd.Timestamp) -> bool:
        return any(a <= at < b for a, b in windows)

    pages = [m for m in messages if m["page"] and m["status"] == "firing"]
    outside = [m for m in pages if not any(inside(pd.Timestamp(a["at"])) for a in m["alerts"])]
    days = (end - pd.Timestamp(s.start) - pd.Timedelta(days=1)) / pd.Timedelta(days=1)
    symptoms = [st["alert"] for st in store.all() if st["alert"]["source"] in ("feed", "batch_run")]
    with_symptom, paged, paged_10, delays = 0, 0, 0, []
    for a, b in windows:
        mine = [x for x in symptoms if a <= pd.Timestamp(x["at"]) < b]
        if not mine:
            continue
        with_symptom += 1
        first = min(pd.Timestamp(x["at"]) for x in mine)
        sent = [pd.Timestamp(m["at"]) for m in pages if any(a <= pd.Timestamp(x["at"]) < b for x in m["alerts"])]
        if sent:
            paged += 1
            paged_10 += (min(sent) - first) <= pd.Timedelta(minutes=10)
            delays.append((min(sent) - first) / pd.Timedelta(minutes=1))
    kinds = Counter(a["source"] for m in outside for a in m["alerts"])
    return {
        "evaluations": n, "messages": len(messages), "pages": len(pages), "pages_outside": len(outside),
        "days": round(days, 1), "pages_outside_per_day": round(len(outside) / days, 2), "outside_by_source": dict(kinds),
        "incidents_with_symptom": with_symptom, "paged": paged, "paged_within_10min": paged_10,
        "minutes_to_page": sorted(delays), "pages_per_day": round(len(pages) / days, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=20270701)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--per-kind", type=int, default=8)
    p.add_argument("--keep", type=Path, help="build into this directory and keep it")
    p.add_argument("--reuse", type=Path, help="measure on a kept build")
    p.add_argument(
        "--redetect",
        action="store_true",
        help="with --reuse: run the detection pass of the kept build again first (its checkpoints and anomalies "
        "replaced), to measure on what the current detection stores; give the build's --seed and --days",
    )
    p.add_argument("--step-min", type=int, default=10, help="minutes of data between alert evaluations")
    p.add_argument("--skip", default="", help="comma-separated phases to leave out: reports, narratives, alerts")
    args = p.parse_args(argv)
    if args.redetect and not args.reuse:
        p.error("--redetect re-runs the detection of a kept build: give --reuse DIR too")
    timings: dict[str, float] = {}
    s = SamplingSettings(seed=args.seed, days=args.days, per_kind=args.per_kind)
    if args.reuse:
        home = args.reuse
        incidents = _load_incidents(home / LABELS)
        # the kept build's own incidents, not the sampling the defaults describe (a build does not record its seed)
        kinds = Counter(i.kind for i in incidents)
        say(
            f"incidents_eval: the kept build in {home}: {len(incidents)} injected incidents from "
            f"{min(i.start for i in incidents):%Y-%m-%d %H:%M} to {max(i.end for i in incidents):%Y-%m-%d %H:%M} "
            f"({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})"
            if incidents
            else f"incidents_eval: the kept build in {home}: no injected incidents"
        )
        span = _data_span(home)
        if not args.redetect and span[0] >= s.start:
            # the alerts are evaluated over the build's own days (the defaults' 30 on a 20-day build would count
            # pages per day over 29 days of which 10 hold no data)
            s = replace(s, days=math.ceil((span[1] + dt.timedelta(minutes=1) - s.start) / dt.timedelta(days=1)))
            say(f"  its data: {span[0]:%Y-%m-%d %H:%M} to {span[1]:%Y-%m-%d %H:%M}, {s.days} days from {s.start:%Y-%m-%d}")
        if args.redetect:
            say(f"--redetect with {s.describe()}")
            end = s.start + dt.timedelta(days=s.days)
            if span[0] < s.start or span[1] >= end:
                say(f"--redetect: {home} holds data from {span[0]:%Y-%m-%d %H:%M} to {span[1]:%Y-%m-%d %H:%M}, outside "
                    f"{s.start:%Y-%m-%d} + {s.days} days: give the --seed and --days it was built with")
                return 2
            detect(home, s, timings, again=True)
    else:
        say(f"incidents_eval: {s.describe()}")
        home = args.keep or Path(tempfile.mkdtemp(prefix="cms-incidents-eval-"))
        home.mkdir(parents=True, exist_ok=True)
        incidents = sample_incidents(load_ontology(), s)
        build(home, incidents, s, timings)
        (home / LABELS).write_text(json.dumps([i.label() for i in incidents]))
    skip = {x.strip() for x in args.skip.split(",") if x.strip()}
    built: list[dict] = []
    if "reports" not in skip:
        t = time.perf_counter()
        rows, built, st = reports(home, incidents)
        timings["reports"] = time.perf_counter() - t
        n = len(rows)
        one = sum(r["reports"] == 1 for r in rows)
        none = sum(r["reports"] == 0 for r in rows)
        many = sum(r["reports"] > 1 for r in rows)
        one_by_time = sum(r["by_time"] == 1 for r in rows)
        loose = [sum(r["related"] == 1 for r in rows), sum(r["related"] == 0 for r in rows), sum(r["related"] > 1 for r in rows)]
        hits = sum(r["hit"] for r in rows)
        cites_ok = sum(set(r["narrative"]["evidence_ids"]) <= {e["id"] for e in r["evidence"]} for r in built)
        say(
            f"\nreports: {st['incidents']} incidents ({st['episodes']} confirmed episodes) over {st['days']} days; "
            f"{n} injected: exactly one matching report {one}, none {none}, several {many} ({timings['reports']:.0f} s)"
        )
        say(
            f"confirmed episodes explained by the schedule (no report): {st['explained']}; injected incidents with one "
            f"in their window on a related entity: {sum(r['schedule'] > 0 for r in rows)}, of which without a report: "
            f"{sum(r['schedule'] > 0 and r['reports'] == 0 for r in rows)}"
        )
        say(
            f"reports matching no injected incident: {st['unmatched']} = {st['unmatched'] / st['days']:.2f}/day; "
            f"by time alone (any report starting in the window) exactly one: {one_by_time}/{n}"
        )
        say(
            f"with the looser rule (an episode starting in the window on anything related to the truth): "
            f"one {loose[0]}, none {loose[1]}, several {loose[2]}"
        )
        for r in rows:
            if r["reports"] != 1 or not r["hit"]:
                say(f"  {r['id']} {r['kind']:27} root {r['root']:45} reports {r['reports']} {r.get('episodes', '')} (looser rule {r['related']})  top {r['top']}")
        say(f"top cause of the incident's first report = label root: {hits}/{n} = {hits / n:.3f}")
        say(f"offline narratives citing only existing evidence: {cites_ok}/{len(built)}")
    if "narratives" not in skip:
        t = time.perf_counter()
        model = model_narratives(built)
        timings["stand-in narratives"] = time.perf_counter() - t
        say(
            f"stand-in narratives: {model['only_existing']}/{model['narratives']} kept cite only existing evidence; "
            f"{model['retried']} retried, {model['offline_fallback']} replaced by the offline engine, {model['requests']} requests"
        )
    if "alerts" in skip:
        if timings:
            say("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
        return 0
    t = time.perf_counter()
    al = alerts_live(home, incidents, s, pd.Timedelta(minutes=args.step_min))
    timings["alerts"] = time.perf_counter() - t
    say(
        f"alerts: {al['evaluations']} evaluations every {args.step_min} min, {al['messages']} messages, {al['pages']} pages; "
        f"outside incidents {al['pages_outside']} over {al['days']} days = {al['pages_outside_per_day']}/day {al['outside_by_source']}"
    )
    if al["incidents_with_symptom"]:
        say(
            f"incidents with a symptom: {al['incidents_with_symptom']}; paged {al['paged']} "
            f"({al['paged'] / al['incidents_with_symptom']:.3f}), within 10 min {al['paged_within_10min']} "
            f"({al['paged_within_10min'] / al['incidents_with_symptom']:.3f}); minutes from the symptom's data "
            f"time to the page: median {pd.Series(al['minutes_to_page'], dtype=float).median():.0f}, "
            f"max {max(al['minutes_to_page'], default=float('nan')):.0f}"
        )
    say(f"pages per simulated day, all: {al['pages_per_day']}")
    say("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    if not args.keep and not args.reuse:
        say(f"(build left in {home}; pass --keep DIR to choose where, --reuse DIR to measure again)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
