"""Gold answers of the public question set (benchmarks/nlq/questions.yaml), computed from the simulator's
ground truth (truth/*.csv in the archive zone) and the ontology with pandas — never by the answering code.

Each group of the set names a gold spec (what the question means, in the simulator's terms) and several
phrasings; this script turns every spec into the rows a right answer holds and writes
benchmarks/nlq/gold.json, which benchmarks/nlq_eval.py compares answers with.

Meanings (the same ones docs/nlq.md gives users):
  runs        failed/succeeded: ended in the window; sla_breached: deadline in the window; running: started
              before the time asked and ended after it; otherwise started in the window
  stage_runs  one row per run and stage (attempts combined); failed: final attempt failed, ended in the
              window; otherwise started in the window
  usual       above 1.5 x the median of the same job's (stage's) successful runs in the 7 days before the
              window (fewer than 4 weeks of history in this set)
  feeds       delayed: a minute in the window with staleness above the feed's SLA; down: a down minute
  outages     overlapping the window
  resources   the largest minute average of the measure in the window above the threshold

    .venv/bin/python benchmarks/nlq_gold.py --truth DIR [--out benchmarks/nlq/gold.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cms_dagster.domain import load_ontology

HERE = Path(__file__).resolve().parent / "nlq"
UTC = dt.timezone.utc
FACTOR = 1.5


def ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s).tz_convert("UTC") if pd.Timestamp(s).tzinfo else pd.Timestamp(s).tz_localize("UTC")


def window(phrase: str, as_of: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """UTC windows of the time phrases the set uses (business time zone UTC)."""
    day0 = as_of.normalize()
    if phrase == "today":
        return day0, as_of
    if phrase == "yesterday":
        return day0 - pd.Timedelta(days=1), day0
    if phrase == "this week":
        return day0 - pd.Timedelta(days=day0.weekday()), as_of
    m = re.fullmatch(r"last (\d+) (hour|day)s?", phrase)
    if m:
        return as_of - pd.Timedelta(**{f"{m[2]}s": int(m[1])}), as_of
    m = re.fullmatch(r"since (\d+):(\d\d)", phrase)
    if m:
        return day0 + pd.Timedelta(hours=int(m[1]), minutes=int(m[2])), as_of
    m = re.fullmatch(r"\d{4}-\d\d-\d\d", phrase)
    if m:
        a = ts(phrase)
        return a, min(a + pd.Timedelta(days=1), as_of)
    raise ValueError(f"gold: unknown window {phrase!r}")


class Truth:
    def __init__(self, truth: Path) -> None:
        ont = load_ontology()
        self.ont = ont
        r = pd.read_csv(truth / "batch_runs.csv", keep_default_na=False)
        for c in ("scheduled_start", "start", "end", "sla_deadline"):
            r[c] = pd.to_datetime(r[c], utc=True)
        r["job_key"] = r.asset_class + "." + r.job
        r["duration_s"] = (r.end - r.start).dt.total_seconds()
        r["breached"] = r.sla_breached.astype(str).str.lower() == "true"
        self.runs = r
        a = pd.read_csv(truth / "stage_runs.csv", keep_default_na=False)
        a["start"] = pd.to_datetime(a.start, utc=True)
        a["end"] = pd.to_datetime(a.end, utc=True)
        a["job_key"] = a.asset_class + "." + a.job
        a = a.sort_values("attempt")
        g = a.groupby(["run_id", "stage"])
        st = g.agg(job_key=("job_key", "last"), start=("start", "min"), end=("end", "max"), attempts=("attempt", "count"), status=("status", "last")).reset_index()
        st["stage_key"] = st.job_key + "." + st.stage
        st["elapsed_s"] = (st.end - st.start).dt.total_seconds()
        st["stage_type"] = [ont.jobs[j].stage(s).type for j, s in zip(st.job_key, st.stage, strict=True)]
        self.stages = st
        o = pd.read_csv(truth / "feed_outages.csv")
        o["start"] = pd.to_datetime(o.start, utc=True)
        o["end"] = pd.to_datetime(o.end, utc=True)
        self.outages = o
        m = pd.read_csv(truth / "feed_minutes.csv")
        m["minute"] = pd.to_datetime(m.minute, utc=True)
        m["stale"] = m.stale.astype(str).str.lower() == "true"
        self.feed_minutes = m
        h = pd.read_csv(truth / "feed_hours.csv")
        h["hour"] = pd.to_datetime(h.hour, utc=True)
        self.feed_hours = h
        rh = pd.read_csv(truth / "resource_hours.csv")
        rh["hour"] = pd.to_datetime(rh.hour, utc=True)
        self.resource_hours = rh

    # ---- scopes
    def jobs(self, spec: dict[str, Any]) -> set[str]:
        jobs = set(self.ont.jobs)
        if "asset_class" in spec:
            jobs = {k for k in jobs if self.ont.jobs[k].asset_class in spec["asset_class"]}
        if "job" in spec:
            jobs &= set(spec["job"])
        return jobs

    def feeds(self, spec: dict[str, Any]) -> set[str]:
        feeds = set(self.ont.feeds)
        if "provider" in spec:
            feeds = {f for f in feeds if self.ont.feeds[f].provider in spec["provider"]}
        if "feed" in spec:
            feeds &= set(spec["feed"])
        return feeds

    # ---- gold kinds
    def runs_rows(self, spec: dict[str, Any], a: pd.Timestamp, b: pd.Timestamp, as_of: pd.Timestamp) -> list[list[Any]]:
        r = self.runs[self.runs.job_key.isin(self.jobs(spec))]
        cond = spec.get("condition")
        if cond == "running":
            r = r[(r.start < as_of) & (r.end >= as_of)]
        elif cond == "failed":
            r = r[(r.status == "failed") & (r.end >= a) & (r.end < b)]
        elif cond == "sla_breached":
            r = r[r.breached & (r.sla_deadline >= a) & (r.sla_deadline < b)]
        elif spec.get("compare") in ("usual", "previous_week") or "longer_than_s" in spec:
            r = r[(r.status == "success") & (r.end >= a) & (r.end < b)]
        else:
            r = r[(r.start >= a) & (r.start < b)]
        if "longer_than_s" in spec:
            r = r[r.duration_s > spec["longer_than_s"]]
        if spec.get("compare") in ("usual", "previous_week"):
            if spec["compare"] == "usual":
                ra, rb, f = a - pd.Timedelta(days=7), a, FACTOR
            else:
                ra, rb, f = a - pd.Timedelta(days=7), b - pd.Timedelta(days=7), 1.0
            ref = self.runs[(self.runs.status == "success") & (self.runs.end >= ra) & (self.runs.end < rb)]
            med = ref.groupby("job_key").duration_s.median()
            r = r[[j in med.index and d > f * med[j] for j, d in zip(r.job_key, r.duration_s, strict=True)]]
        return sorted([x] for x in r.run_id)

    def stage_rows(self, spec: dict[str, Any], a: pd.Timestamp, b: pd.Timestamp, as_of: pd.Timestamp) -> list[list[Any]]:
        s = self.stages[self.stages.job_key.isin(self.jobs(spec))]
        if "stage_type" in spec:
            s = s[s.stage_type.isin(spec["stage_type"])]
        cond = spec.get("condition")
        if cond == "failed":
            s = s[(s.status == "failed") & (s.end >= a) & (s.end < b)]
        else:
            s = s[(s.start >= a) & (s.start < b)]
        if cond == "retried":
            s = s[s.attempts > 1]
        if spec.get("compare") == "usual":
            s = s[s.end <= as_of]
            ref = self.stages[(self.stages.status == "success") & (self.stages.start >= a - pd.Timedelta(days=7)) & (self.stages.start < a)]
            med = ref.groupby("stage_key").elapsed_s.median()
            s = s[[k in med.index and e > FACTOR * med[k] for k, e in zip(s.stage_key, s.elapsed_s, strict=True)]]
        return sorted([r, st] for r, st in zip(s.run_id, s.stage, strict=True))

    def feed_rows(self, spec: dict[str, Any], a: pd.Timestamp, b: pd.Timestamp) -> list[list[Any]]:
        feeds = self.feeds(spec)
        if "jobs_of" in spec:
            feeds &= {f for k in self.jobs({"asset_class": spec["jobs_of"]}) for f in self.ont.jobs[k].feeds}
        m = self.feed_minutes[(self.feed_minutes.minute >= a) & (self.feed_minutes.minute < b) & self.feed_minutes.feed.isin(feeds)]
        if spec["condition"] == "delayed":
            m = m[m.stale]
        else:
            m = m[m.up == 0]
        return sorted([f] for f in set(m.feed))

    def outage_rows(self, spec: dict[str, Any], a: pd.Timestamp, b: pd.Timestamp) -> list[list[Any]]:
        o = self.outages[self.outages.feed.isin(self.feeds(spec)) & (self.outages.start < b) & (self.outages.end > a)]
        return sorted([f, s.strftime("%Y-%m-%dT%H:%M:%SZ")] for f, s in zip(o.feed, o.start, strict=True))

    def resource_rows(self, spec: dict[str, Any], a: pd.Timestamp, b: pd.Timestamp) -> list[list[Any]]:
        h = self.resource_hours[(self.resource_hours.hour >= a) & (self.resource_hours.hour < b) & self.resource_hours.metric.isin(spec["metrics"])]
        if "resource_kind" in spec:
            h = h[h.resource.str.startswith(spec["resource_kind"] + ":")]
        peak = h.groupby("resource").max_avg.max()
        return sorted([r] for r, v in peak.items() if v > spec["above"])

    def metric_rows(self, spec: dict[str, Any], a: pd.Timestamp, b: pd.Timestamp) -> list[list[Any]]:
        name, group = spec["metric"], spec.get("group")
        r = self.runs[self.runs.job_key.isin(self.jobs(spec))]
        keycol = {"asset_class": "asset_class", "job": "job_key", None: None}
        if name in ("runs", "failures", "failure_rate", "sla_breaches", "sla_compliance", "duration", "start_delay", "records_per_minute"):
            if name == "runs":
                d = r[(r.start >= a) & (r.start < b)].assign(v=1.0)
                agg = "count"
            elif name == "failures":
                d = r[(r.status == "failed") & (r.end >= a) & (r.end < b)].assign(v=1.0)
                agg = "count"
            elif name == "failure_rate":
                d = r[r.status.isin(["success", "failed"]) & (r.end >= a) & (r.end < b)]
                d = d.assign(v=(d.status == "failed") * 100.0)
                agg = "mean"
            elif name == "sla_breaches":
                d = r[r.breached & (r.sla_deadline >= a) & (r.sla_deadline < b)].assign(v=1.0)
                agg = "count"
            elif name == "sla_compliance":
                d = r[(r.sla_deadline >= a) & (r.sla_deadline < b)]
                d = d.assign(v=(~d.breached) * 100.0)
                agg = "mean"
            elif name == "start_delay":
                d = r[(r.start >= a) & (r.start < b)]
                d = d.assign(v=(d.start - d.scheduled_start).dt.total_seconds())
                agg = "mean"
            elif name == "records_per_minute":
                d = r[(r.status == "success") & (r.end >= a) & (r.end < b)]
                k = keycol[group]
                if k is None:
                    return [[float(d.records.sum() / (d.duration_s.sum() / 60.0))]]
                out = d.groupby(k).apply(lambda x: x.records.sum() / (x.duration_s.sum() / 60.0), include_groups=False)
                return sorted([g, float(v)] for g, v in out.items())
            else:
                d = r[(r.status == "success") & (r.end >= a) & (r.end < b)].assign(v=lambda x: x.duration_s)
                agg = "mean"
            k = keycol[group]
            if k is None:
                return [[float(getattr(d.v, agg)()) if len(d) or agg == "count" else None]]
            out = d.groupby(k).v.agg(agg)
            return sorted([g, float(v)] for g, v in out.items())
        if name == "outages" or name == "downtime":
            o = self.outages[self.outages.feed.isin(self.feeds(spec)) & (self.outages.start >= a) & (self.outages.start < b)]
            v = o.minutes.sum() if name == "downtime" else len(o)
            if group == "feed":
                out = o.groupby("feed").minutes.sum() if name == "downtime" else o.groupby("feed").size()
                return sorted([g, float(x)] for g, x in out.items())
            return [[float(v)]]
        if name == "stage_duration":
            s = self.stages[self.stages.job_key.isin(self.jobs(spec)) & (self.stages.status == "success") & (self.stages.start >= a) & (self.stages.start < b)]
            if "stage_type" in spec:
                s = s[s.stage_type.isin(spec["stage_type"])]
            if group == "stage":
                return sorted([k, float(v)] for k, v in s.groupby("stage_key").elapsed_s.mean().items())
            return [[float(s.elapsed_s.mean())]]
        if name == "stage_failures":
            s = self.stages[self.stages.job_key.isin(self.jobs(spec)) & (self.stages.status == "failed") & (self.stages.start >= a) & (self.stages.start < b)]
            return [[float(len(s))]]
        # feed measures over whole hours
        h = self.feed_hours[(self.feed_hours.hour >= a) & (self.feed_hours.hour < b) & self.feed_hours.feed.isin(self.feeds(spec))]
        h = h.assign(provider=[self.ont.feeds[f].provider for f in h.feed])
        k = {"feed": "feed", "provider": "provider", None: None}[group]

        def value(x: pd.DataFrame) -> float:
            if name == "availability":
                return 100.0 * x.minutes_up.sum() / x.minutes.sum()
            if name == "latency":
                return float((x.latency_ms_mean * x.minutes).sum() / x.minutes.sum())
            if name == "staleness":
                return float(x.staleness_s_max.max())
            if name == "stale_minutes":
                return float(x.stale_minutes.sum())
            if name == "messages":
                return float(x.messages.sum())
            raise ValueError(f"gold: unknown metric {name}")

        if k is None:
            return [[value(h)]]
        return sorted([g, value(x)] for g, x in h.groupby(k))


def gold_rows(t: Truth, spec: dict[str, Any], as_of: pd.Timestamp) -> tuple[list[str], list[list[Any]]]:
    a, b = window(spec.get("window", "today"), as_of)
    kind = spec["kind"]
    if kind == "runs":
        return ["run_id"], t.runs_rows(spec, a, b, as_of)
    if kind == "stage_runs":
        return ["run_id", "stage_id"], t.stage_rows(spec, a, b, as_of)
    if kind == "feeds":
        return ["feed_id"], t.feed_rows(spec, a, b)
    if kind == "outages":
        return ["feed_id", "outage_start_ts"], t.outage_rows(spec, a, b)
    if kind == "resources":
        return ["resource_id"], t.resource_rows(spec, a, b)
    if kind == "metric":
        group = spec.get("group")
        keys = {None: [], "asset_class": ["asset_class_id"], "job": ["job_key"], "feed": ["feed_id"], "provider": ["provider"], "stage": ["stage_key"]}[group]
        return [*keys, spec["metric"]], t.metric_rows(spec, a, b)
    raise ValueError(f"gold: unknown kind {kind}")


def build_gold(truth: Path, questions: Path) -> list[dict[str, Any]]:
    t = Truth(truth)
    groups = yaml.safe_load(questions.read_text())
    out = []
    n = 0
    for g in groups:
        as_of = ts(g["as_of"])
        cols, rows = gold_rows(t, g["gold"], as_of)
        for q in g["questions"]:
            n += 1
            out.append({"id": f"q{n:03d}", "question": q, "as_of": g["as_of"], "spec": g["gold"], "columns": cols, "rows": rows})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--truth", required=True, type=Path, help="truth/ folder of the simulation (archive zone)")
    p.add_argument("--questions", type=Path, default=HERE / "questions.yaml")
    p.add_argument("--out", type=Path, default=HERE / "gold.json")
    a = p.parse_args(argv)
    gold = build_gold(a.truth, a.questions)
    a.out.write_text(json.dumps(gold, indent=1) + "\n")
    print(f"{len(gold)} questions with gold answers -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
