"""Root-cause analysis on a simulated month: AC@1, AC@3, Avg@5 and kind accuracy, beside baselines.

    .venv/bin/python benchmarks/rca_eval.py                       # 64 incidents over 30 days, seed 20270501 (held out)
    .venv/bin/python benchmarks/rca_eval.py --seed 7 --per-kind 8 --keep /tmp/rca-month
    .venv/bin/python benchmarks/rca_eval.py --reuse /tmp/rca-month  # re-rank on a kept build (no re-build)
    .venv/bin/python benchmarks/rca_eval.py --reuse /tmp/rca-month --redetect  # detect again, then rank

The full path, once for the whole month (not once per incident):

1. sample incidents from the seed (``cms_harness.rca_evaluation.sample_incidents``): ``--per-kind`` of each
   of the 8 kinds at random times and on random targets, starts at least 6 h apart, none in the first 2 days;
2. simulate the month with all of them into a temporary ``CMS_HOME`` lake (``simulate``);
3. flatten every raw hour to Parquet and load it into DuckDB (``process_hour``, ``load_hour``);
4. one ``dbt build`` of the project on that DuckDB file (``dbt run`` when a test fails; the run says so);
5. one detection pass over the month (``score_window``) into ``intelligence.anomalies``;
6. per incident: the **start is the first alarm** (any series) in [label start - 30 min, label end + 3 h)
   (cut at the next incident's window): the label says where to look, never when it started; no alarm
   there = undetected, a miss for every method (``--start-from episode``: the first alarm there of a
   confirmed episode, as ``cms detect alarms`` groups them). Then ``analyse_incident``, the function
   behind ``cms rca incident``, reads the evidence (the fact marts' minute series over [start - 6 h,
   start + 2 h), each divided by its usual daily shape from the same clock window of earlier days of the
   same type, staleness and database connections as stored; run and stage series over [start - 7 days,
   start + 2 h)) and ranks it with the ontology's graph; a max-|z| baseline and random ranking run on
   the same evidence; the same rankings on unadjusted evidence are printed as an ablation.

Prints the settings, per-incident outcomes, the method x (AC@1, AC@3, Avg@5, kind accuracy) table, CMS
AC@1 per kind, detection counts and phase timings. Published metric-based RCA on microservice benchmarks
(RCAEval): BARO Avg@5 0.86 (Online Boutique), 0.81 (Train Ticket). Aim: AC@1 >= 0.9.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

from cms_dagster import settings as settings_mod
from cms_dagster.detect.episodes import label_alarms
from cms_dagster.domain import load_ontology
from cms_dagster.lake import Lake
from cms_dagster.otel.conventions import INCIDENT_KINDS
from cms_dagster.rca.incident import analyse_incident
from cms_dagster.rca.validate import RcaInputError
from cms_dagster.simulate.incidents import Incident, iso, parse_time
from cms_harness.rca_evaluation import (
    ActivityIndex,
    EvidenceSettings,
    SamplingSettings,
    ac_at_k,
    detect_start,
    entity_order,
    evidence_frame,
    max_z_ranking,
    random_expectation,
    random_shuffles,
    rank_of,
    sample_incidents,
    search_windows,
)

UTC = dt.timezone.utc
STATE = "rca-eval-state.json"


def say(msg: str) -> None:
    print(msg, flush=True)


def environment(home: Path) -> dict[str, str]:
    """The caller's environment without any CMS_* setting, pointed at ``home`` (lake + DuckDB file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CMS_", "SNOWFLAKE_", "DBT_TARGET"))}
    env.update(
        CMS_HOME=str(home),
        CMS_WAREHOUSE="duckdb",
        CMS_DUCKDB_PATH=str(home / "warehouse.duckdb"),
        DAGSTER_HOME=str(home / "dagster"),
        DO_NOT_TRACK="1",
    )
    return env


# --- the build: simulate -> lake -> warehouse -> dbt -> detect --------------------------------------------


def build(home: Path, incidents: list[Incident], s: SamplingSettings, timings: dict[str, float]) -> dict:
    env = environment(home)
    cfg = settings_mod.load(env)
    lake = Lake.from_settings(cfg)
    ont = load_ontology()
    info: dict = {}

    from cms_dagster.simulate.run import simulate

    t = time.perf_counter()
    res = simulate(
        ont, lake, days=s.days, seed=s.seed, start=s.start, incidents=incidents, default_incidents_on=False
    )
    timings["simulate"] = time.perf_counter() - t
    info["points"] = res.points
    info["raw_files"] = len(res.raw_keys)
    say(f"  simulate: {res.points:,} points in {len(res.raw_keys)} raw files, {timings['simulate']:.0f} s")

    from cms_dagster.lake.processing import process_hour
    from cms_dagster.warehouse import duckdb_load

    hours = sorted(
        {(dt.date.fromisoformat(k.split("dt=")[1][:10]), int(k.split("hour=")[1][:2])) for k in res.raw_keys}
    )
    t = time.perf_counter()
    rejected = 0
    for day, hour in hours:
        rep = process_hour(lake, day, hour)
        rejected += rep.rejected_lines + rep.rejected_points + rep.quarantined_files
    timings["process"] = time.perf_counter() - t
    t = time.perf_counter()
    con = duckdb_load.connect(cfg.duckdb_path)
    try:
        for day, hour in hours:
            rep = duckdb_load.load_hour(con, lake.processed, day, hour)
    finally:
        con.close()
    timings["load"] = time.perf_counter() - t
    info["rows"] = rep.total_rows
    info["rejected"] = rejected
    say(
        f"  process: {len(hours)} hours flattened in {timings['process']:.0f} s ({rejected} rejected); "
        f"load: {rep.total_rows:,} rows in raw.metric_points in {timings['load']:.0f} s"
    )

    from cms_dagster.warehouse.dbt import run_dbt

    # target/ and logs/ of this build stay in `home`: the project's own target/ (the manifest Dagster loads)
    # is not touched
    paths = ["--target-path", str(home / "dbt-target"), "--log-path", str(home / "dbt-logs")]
    t = time.perf_counter()
    proc = run_dbt(["build", *paths], environ=env, check=False)
    info["dbt"] = "dbt build"
    if proc.returncode != 0:
        failed = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "FAIL" in ln or "ERROR" in ln][:10]
        say(
            "  dbt build failed; falling back to `dbt run` (models only). Failures:\n    "
            + "\n    ".join(failed)
        )
        proc = run_dbt(["run", *paths], environ=env, check=True)
        info["dbt"] = "dbt run (dbt build failed: " + "; ".join(failed[:3]) + ")"
    timings["dbt"] = time.perf_counter() - t
    say(f"  {info['dbt'].split(' (')[0]}: {timings['dbt']:.0f} s")

    info["detect"] = detect(home, s, timings)
    return info


def detect(home: Path, s: SamplingSettings, timings: dict[str, float], *, again: bool = False) -> dict:
    """One detection pass over the month into intelligence.anomalies; ``again`` first drops the earlier
    pass (its checkpoints and anomalies), so a changed detector can be measured on a kept build."""
    env = environment(home)
    cfg = settings_mod.load(env)
    lake = Lake.from_settings(cfg)
    from cms_dagster.detect.pipeline import CHECKPOINT_PREFIX, score_window
    from cms_dagster.warehouse.client import from_settings

    wh = from_settings(cfg)
    if again:
        gone = list(lake.raw.list(CHECKPOINT_PREFIX + "/"))
        for key in gone:
            lake.raw.delete(key)
        say(f"  --redetect: dropped {len(gone)} detector checkpoints and the earlier anomalies")

    def write(source: str, a: dt.datetime, b: dt.datetime, df: pd.DataFrame) -> None:
        wh.replace_span("intelligence.anomalies", df, "ts", a, b, {"source": source})

    t = time.perf_counter()
    det = score_window(
        wh.query,
        write,
        lake.raw,
        s.start,
        s.start + dt.timedelta(days=s.days),
        marts_schema=wh.marts,
        log=lambda m: say(f"    {m}"),
    )
    timings["detect"] = time.perf_counter() - t
    say(
        f"  detect: {det.points:,} points in {det.series} series, {det.alarms:,} alarms, {timings['detect']:.0f} s"
    )
    return {"points": det.points, "series": det.series, "alarms": det.alarms, "errors": len(det.errors)}


# --- ranking each incident ----------------------------------------------------------------------------------


VARIANTS = {"adjusted": "seasonally adjusted evidence", "raw": "evidence as stored"}


def evaluate(
    home: Path,
    incidents: list[Incident],
    *,
    evidence: dict[str, EvidenceSettings],
    before: dt.timedelta,
    after: dt.timedelta,
    start_from: str = "alarm",
) -> tuple[list[dict], dict]:
    env = environment(home)
    cfg = settings_mod.load(env)
    from cms_dagster.warehouse.client import from_settings

    wh = from_settings(cfg)
    ont = load_ontology()
    alarms = wh.query(
        "select ts, series, entity_id, metric, score, source from intelligence.anomalies where is_alarm order by ts"
    )
    alarms["ts"] = pd.to_datetime(alarms["ts"], utc=True)
    starters = alarms
    if start_from == "episode":  # only alarms of corroborated episodes start an incident (as a page would)
        labelled = label_alarms(alarms, ont.dependency_edges())
        starters = labelled[labelled["confirmed"]]
    windows = search_windows(incidents, before=before, after=after)
    rows = []
    seconds: dict[str, list[float]] = defaultdict(list)
    for inc, (lo, hi) in zip(incidents, windows, strict=True):
        related = {inc.root_cause} | inc.affected_jobs | inc.affected_stages | inc.affected_resources
        related |= inc.affected_feeds
        in_window = alarms[(alarms["ts"] >= pd.Timestamp(lo)) & (alarms["ts"] < pd.Timestamp(hi))]
        row: dict = {
            "id": inc.id,
            "kind": inc.kind,
            "root": inc.root_cause,
            "label_start": iso(inc.start),
            "window": [iso(lo), iso(hi)],
            # the root's own series always move for feed and resource kinds; a failing stage only if it ran
            "visible": inc.kind != "job_failure" or inc.root_cause in inc.affected_stages,
            "affected_jobs": len(inc.affected_jobs),
            "alarms_in_window": len(in_window),
            "root_alarmed": bool((in_window["entity_id"] == inc.root_cause).any()),
            "related_alarmed": bool(in_window["entity_id"].isin(related).any()),
        }
        first = detect_start(starters, lo, hi)
        if first is None:
            row["detected"] = False
            for v in evidence:
                row.update({f"cms_{v}": None, f"maxz_{v}": None, f"candidates_{v}": None, f"kind_{v}": None})
            rows.append(row)
            continue
        start = first["ts"].to_pydatetime()
        row.update(
            detected=True,
            start=iso(start),
            lag_min=round((start - inc.start).total_seconds() / 60, 1),
            first_alarm=str(first["series"]),
            first_alarm_related=first["entity_id"] in related,
        )
        for v, ev in evidence.items():
            # the product's function (cms rca incident): evidence from the marts, ranked on the ontology
            t = time.perf_counter()
            try:
                result = analyse_incident(wh.query, start, ontology=ont, settings=ev, marts_schema=wh.marts)
                hyps, frame = result.hypotheses, result.evidence
            except RcaInputError as e:
                hyps, frame = [], evidence_frame(wh.query, start, ev, marts_schema=wh.marts)
                row[f"error_{v}"] = str(e)
            seconds[f"analyse_{v}"].append(time.perf_counter() - t)
            order = entity_order(h.entity for h in hyps)
            row[f"cms_{v}"] = rank_of(order, inc.root_cause)
            row[f"top_{v}"] = [(h.entity, h.kind, round(h.score, 3)) for h in hyps[:3]]
            row[f"kind_{v}"] = hyps[0].kind if hyps else None
            row[f"entity_{v}"] = hyps[0].entity if hyps else None
            mz = max_z_ranking(frame, start, start + ev.horizon)
            row[f"maxz_{v}"] = rank_of([e for e, _ in mz], inc.root_cause)
            row[f"candidates_{v}"] = sorted(set(frame["entity"]))
        rows.append(row)
    # the detector's background: alarms per hour outside every search window
    outside = pd.Series(True, index=alarms.index)
    for lo, hi in windows:
        outside &= ~((alarms["ts"] >= pd.Timestamp(lo)) & (alarms["ts"] < pd.Timestamp(hi)))
    covered = sum((hi - lo).total_seconds() for lo, hi in windows) / 3600
    return rows, {"seconds": seconds, "outside_alarms": int(outside.sum()), "window_hours": covered}


# --- report ---------------------------------------------------------------------------------------------------


def report(
    rows: list[dict],
    extra: dict,
    timings: dict[str, float],
    info: dict,
    args: argparse.Namespace,
    hours: float,
) -> dict:
    n = len(rows)
    truths = [r["root"] for r in rows]
    detected = sum(r["detected"] for r in rows)

    say("\nper incident (rank of the true root entity; '-' = not ranked or undetected):")
    say(f"  {'':8} {'':27} {'':50} {'':12} {'':>6} {'adjusted':>9} {'raw':>9}")
    say(
        f"  {'id':8} {'kind':27} {'root':50} {'label start':12} {'lag':>6} {'CMS':>4} {'maxz':>4} {'CMS':>4}"
        f" {'maxz':>4}  CMS top-1 (entity kind), adjusted"
    )
    for r in rows:
        lag = f"{r['lag_min']:+.0f}m" if r["detected"] else "undet"
        top = f"{r.get('entity_adjusted')} {r.get('kind_adjusted')}" if r.get("entity_adjusted") else ""
        ranks = [r.get(k) or "-" for k in ("cms_adjusted", "maxz_adjusted", "cms_raw", "maxz_raw")]
        say(
            f"  {r['id']:8} {r['kind']:27} {r['root']:50} {r['label_start'][5:16]:12} {lag:>6} "
            + " ".join(f"{x:>4}" for x in ranks)
            + f"  {top}"
        )

    figures: dict = {}

    def line(name: str, ranks_or_ac, kind: str) -> str:
        ac = (
            ranks_or_ac
            if isinstance(ranks_or_ac, dict)
            else {k: ac_at_k(ranks_or_ac, k) for k in range(1, 6)}
        )
        figures[name] = {
            **{f"ac@{k}": round(ac[k], 4) for k in range(1, 6)},
            "avg@5": round(sum(ac.values()) / 5, 4),
            "kind_acc": kind,
        }
        return f"  {name:44} {ac[1]:6.3f} {ac[3]:6.3f} {sum(ac[k] for k in range(1, 6)) / 5:6.3f}   {kind}"

    say(
        f"\nroot-cause entity over {n} incidents ({detected} detected; an undetected incident is a miss for every method):"
    )
    say(f"  {'method':44} {'AC@1':>6} {'AC@3':>6} {'Avg@5':>6}   kind acc")
    for v in VARIANTS:
        kind_ok = sum(r.get(f"kind_{v}") == r["kind"] for r in rows) / n
        say(line(f"CMS analyse_incident ({v})", [r[f"cms_{v}"] for r in rows], f"{kind_ok:.3f}"))
        say(line(f"max-|z| BARO-like, no graph ({v})", [r[f"maxz_{v}"] for r in rows], "n/a"))
    cands = [r["candidates_adjusted"] for r in rows]
    rnd_mc = random_shuffles(cands, truths, shuffles=args.shuffles, seed=args.seed)
    rnd_exp = {
        k: sum(
            random_expectation(len(c or []), bool(c) and t in c, k)
            for t, c in zip(truths, cands, strict=True)
        )
        / n
        for k in range(1, 6)
    }
    say(
        line(
            f"random order ({args.shuffles} seeded shuffles)", rnd_mc, f"{1 / len(INCIDENT_KINDS):.3f} (1/8)"
        )
    )
    say(line("random order (exact expectation)", rnd_exp, ""))
    ent_ok = [r["cms_adjusted"] == 1 for r in rows]
    both = sum(e and r.get("kind_adjusted") == r["kind"] for e, r in zip(ent_ok, rows, strict=True))
    say(
        f"  CMS (adjusted) kind accuracy when the top-1 entity is right: {both}/{sum(ent_ok)} = {both / max(sum(ent_ok), 1):.3f}"
    )
    say(
        "  published (RCAEval, metric-based): BARO Avg@5 0.86 (Online Boutique), 0.81 (Train Ticket); aim: AC@1 >= 0.9"
    )

    say("\nper kind (adjusted evidence)   n  det  CMS AC@1  AC@3  kind acc   max-|z| AC@1   CMS raw AC@1")
    by_kind = defaultdict(list)
    for r in rows:
        by_kind[r["kind"]].append(r)
    for kind in INCIDENT_KINDS:
        rs = by_kind.get(kind, [])
        if not rs:
            continue
        c = [r["cms_adjusted"] for r in rs]
        say(
            f"  {kind:27} {len(rs):3} {sum(r['detected'] for r in rs):4}  {ac_at_k(c, 1):8.2f}  {ac_at_k(c, 3):4.2f}"
            f"  {sum(r.get('kind_adjusted') == kind for r in rs) / len(rs):8.2f}   {ac_at_k([r['maxz_adjusted'] for r in rs], 1):12.2f}"
            f"   {ac_at_k([r['cms_raw'] for r in rs], 1):12.2f}"
        )

    lags = pd.Series([r["lag_min"] for r in rows if r["detected"]], dtype=float)
    no_effect = [r for r in rows if not r["visible"]]
    say(
        f"\ndetection: {detected}/{n} incidents had an alarm in their search window ({n - detected} undetected"
        + (
            f": {', '.join(r['id'] + ' ' + r['kind'] for r in rows if not r['detected'])}"
            if detected < n
            else ""
        )
        + ")"
    )
    if len(lags):
        say(
            f"  detected start - label start: median {lags.median():+.0f} min, min {lags.min():+.0f}, max {lags.max():+.0f}; "
            f"{int((lags < 0).sum())} before the label start"
        )
    say(
        f"  first alarm on the root or an entity the simulator records as affected: "
        f"{sum(bool(r.get('first_alarm_related')) for r in rows)}/{n}; root entity alarmed anywhere in its window: "
        f"{sum(r['root_alarmed'] for r in rows)}/{n}; any related entity alarmed: {sum(r['related_alarmed'] for r in rows)}/{n}"
    )
    rate = extra["outside_alarms"] / max(hours - extra["window_hours"], 1e-9)
    say(
        f"  background: {extra['outside_alarms']:,} alarms outside the search windows = {rate:.1f} alarms/hour over the "
        f"estate (so the first alarm in a window is often unrelated to the incident)"
    )
    say(
        f"  incidents with no visible effect (a failing stage that did not run in the incident window): {len(no_effect)}"
        + (
            f" ({', '.join(r['id'] + ' ' + r['root'] for r in no_effect)}); counted, as misses when missed"
            if no_effect
            else ""
        )
    )

    total = sum(timings.values())
    say(
        "\nphase timings (s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
        + f"; total {total:.1f}"
    )
    for v in VARIANTS:
        took = extra["seconds"].get(f"analyse_{v}", [])
        if took:
            say(
                f"  per incident ({v}): analyse_incident (evidence query + ranking) {sum(took) / len(took):.2f} s "
                f"(max {max(took):.2f} s)"
            )
    return {"n": n, "detected": detected, "figures": figures, "timings": timings, "info": info, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--seed",
        type=int,
        default=20270501,
        help="incident sampling and simulation seed (default: 20270501, never looked at while the ranking was developed)",
    )
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--per-kind", type=int, default=8)
    p.add_argument("--start", default="2026-11-16T00:00:00Z")
    p.add_argument("--min-gap-hours", type=float, default=6.0)
    p.add_argument("--warmup-days", type=float, default=2.0)
    p.add_argument("--active-share", type=float, default=0.8)
    p.add_argument("--history-hours", type=float, default=6.0, help="minute series before the detected start")
    p.add_argument("--horizon-hours", type=float, default=2.0, help="evidence after the detected start")
    p.add_argument("--run-history-days", type=float, default=7.0, help="run series before the detected start")
    p.add_argument(
        "--reference-days", type=int, default=7, help="days of seasonal reference for minute series"
    )
    p.add_argument("--look-before-min", type=float, default=30.0, help="search window before the label start")
    p.add_argument("--look-after-hours", type=float, default=3.0, help="search window after the label end")
    p.add_argument(
        "--start-from",
        choices=("alarm", "episode"),
        default="alarm",
        help="an incident starts at the first alarm in its window (alarm), or at the first alarm of a "
        "confirmed episode there (episode: alarms grouped as `cms detect alarms` does)",
    )
    p.add_argument("--shuffles", type=int, default=1000)
    p.add_argument(
        "--keep", type=Path, help="build in this directory and keep it (default: a temp dir, removed)"
    )
    p.add_argument("--reuse", type=Path, help="skip the build: rank on the build kept in this directory")
    p.add_argument(
        "--redetect",
        action="store_true",
        help="with --reuse: run the detection pass again first (to measure a changed detector)",
    )
    p.add_argument("--json-out", type=Path, help="write every figure and per-incident row as JSON here")
    args = p.parse_args(argv)
    if args.redetect and not args.reuse:
        p.error("--redetect re-runs the detection of a kept build: give --reuse DIR too")

    s = SamplingSettings(
        seed=args.seed,
        start=parse_time(args.start),
        days=args.days,
        per_kind=args.per_kind,
        min_gap=dt.timedelta(hours=args.min_gap_hours),
        warmup=dt.timedelta(days=args.warmup_days),
        active_share=args.active_share,
    )
    say("CMS root-cause evaluation (benchmarks/rca_eval.py)")
    say(f"  sampling: {s.describe()}")
    base = EvidenceSettings(
        history=dt.timedelta(hours=args.history_hours),
        horizon=dt.timedelta(hours=args.horizon_hours),
        run_history=dt.timedelta(days=args.run_history_days),
        reference_days=args.reference_days,
    )
    evidence = {"adjusted": base, "raw": dataclasses.replace(base, seasonal=False)}
    say(
        f"  start: first alarm (any series) in [label start - {args.look_before_min:g} min, label end + "
        f"{args.look_after_hours:g} h), cut at the next incident's window"
    )
    say(
        f"  evidence from fct_infra_metrics, fct_feed_status, fct_batch_runs, fct_stage_runs: {base.describe()}"
    )
    say(f"  ablation 'raw': {evidence['raw'].describe()}")
    say(
        f"  random baseline: {args.shuffles} shuffles, seed {args.seed}; machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    timings: dict[str, float] = {}
    t = time.perf_counter()
    ont = load_ontology()
    incidents = sample_incidents(ont, s)
    timings["sample"] = time.perf_counter() - t
    kinds = Counter(i.kind for i in incidents)
    say(f"  {len(incidents)} incidents: " + ", ".join(f"{k} {kinds[k]}" for k in INCIDENT_KINDS))
    activity = ActivityIndex(ont, s.start, s.start + dt.timedelta(days=s.days))
    busy = sum(
        activity.active(i.kind, i.root_cause, i.start, (i.end - i.start).total_seconds() / 60)
        for i in incidents
    )
    say(
        f"  {busy}/{len(incidents)} start while work that the incident would touch begins (busy), {len(incidents) - busy} at idle times"
    )

    tmp = None
    if args.reuse:
        home = args.reuse
        if not (home / STATE).is_file():
            say(f"--reuse {home}: no {STATE} there, so it is not a build kept by this script (--keep DIR makes one)")
            return 2
        state = json.loads((home / STATE).read_text())
        if state["incidents"] != [[i.kind, i.root_cause, iso(i.start), iso(i.end)] for i in incidents]:
            say(
                f"--reuse {home}: it was built with other incidents (seed/settings); build it again without --reuse"
            )
            return 2
        info = state["info"]
        timings.update(state["timings"])
        say(f"  reusing the build in {home} (its phase timings are shown below)")
        if args.redetect:
            info["detect"] = detect(home, s, timings, again=True)
            state.update(info=info, timings=timings)
            (home / STATE).write_text(json.dumps(state))
        # the simulator records the affected entities on the incidents; restore them from the labels
        labels = json.loads(
            next((home / "lake" / "archive" / "simulations").glob("*/labels.json")).read_text()
        )
        for inc, lab in zip(
            incidents,
            sorted(labels["incidents"], key=lambda x: (x["start"], x["kind"], x["root_cause"])),
            strict=True,
        ):
            inc.id = lab["id"]
            inc.affected_jobs = set(lab["affected_jobs"])
            inc.affected_stages = set(lab["affected_stages"])
            inc.affected_resources = set(lab["affected_resources"])
            inc.affected_feeds = set(lab["affected_feeds"])
    else:
        if args.keep:
            home = args.keep
            if home.exists():
                shutil.rmtree(home)
            home.mkdir(parents=True)
        else:
            tmp = tempfile.mkdtemp(prefix="cms-rca-eval-")
            home = Path(tmp)
        say(f"\nbuilding the month in {home}")
        info = build(home, incidents, s, timings)
        (home / STATE).write_text(
            json.dumps(
                {
                    "incidents": [[i.kind, i.root_cause, iso(i.start), iso(i.end)] for i in incidents],
                    "info": info,
                    "timings": timings,
                }
            )
        )
    try:
        t = time.perf_counter()
        rows, extra = evaluate(
            home,
            incidents,
            evidence=evidence,
            before=dt.timedelta(minutes=args.look_before_min),
            after=dt.timedelta(hours=args.look_after_hours),
            start_from=args.start_from,
        )
        timings["rank"] = time.perf_counter() - t
        out = report(rows, extra, timings, info, args, hours=s.days * 24.0)
        if args.json_out:
            args.json_out.write_text(json.dumps(out, indent=1, default=str))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
