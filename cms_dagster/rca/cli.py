"""``cms rca rank``: rank the root-cause candidates of an incident from metrics and a dependency graph;
``cms rca incident``: the same for an incident in the warehouse, from its start time."""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from cms_dagster.domain.model import Ontology, OntologyError, load_ontology
from cms_dagster.rca.engine import NO_SURE_MOVE_METHOD, rank
from cms_dagster.rca.findings import Candidate, iso_time
from cms_dagster.rca.hypotheses import Hypothesis, rank_incident
from cms_dagster.rca.series import DEFAULT_THRESHOLD
from cms_dagster.rca.validate import RcaInputError, parse_time

__all__ = [
    "format_candidates",
    "format_hypotheses",
    "load_graph",
    "load_metrics",
    "register",
    "run_incident",
    "run_rank",
]

EPILOG = """\
input files:
  metrics CSV  long format, one row per point: time,node,metric,value (node may be called entity).
               Normal history first, then the incident; times ISO-8601 (2026-11-27T10:00:00Z) or epoch
               seconds; one value per (time, node, metric); times increasing within each series.
  graph CSV    source,target: one row per dependency, "source depends on target", so a fault in the
               target can show in the source (api,db means the api calls the db).
  ontology     an estate.yaml (cms_dagster/domain/estate.yaml): the graph is built from it (jobs need
               feeds and stages, stages need earlier stages and resources) and the answer names the
               incident kind of each candidate (connection_pool_exhaustion, memory_leak, ...).

examples:
  cms rca rank --metrics incident.csv --graph deps.csv --start 2026-11-27T10:00:00Z
  cms rca rank --metrics incident.csv --graph deps.csv --start 2026-11-27T10:00:00Z --target web --json
  cms rca rank --metrics warehouse_series.csv --ontology cms_dagster/domain/estate.yaml \\
      --start 2026-11-20T21:00:00Z --target job:derivatives.eod_valuation --top 5
"""


def _read_csv(path: str | Path, what: str) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise RcaInputError(f"{what} file {str(path)!r} does not exist")
    try:
        try:
            frame = pd.read_csv(p, engine="pyarrow")
        except Exception:  # pyarrow refuses some files the C parser reads (ragged rows, odd quoting)
            frame = pd.read_csv(p)
    except pd.errors.EmptyDataError:
        raise RcaInputError(
            f"{what} file {str(path)!r} is empty: it needs a header row and data rows"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise RcaInputError(f"{what} file {str(path)!r} is not a readable CSV: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    frame.index = pd.RangeIndex(2, 2 + len(frame))  # row labels = CSV line numbers (line 1 is the header)
    return frame


def load_metrics(path: str | Path) -> pd.DataFrame:
    """The metrics CSV as a DataFrame whose index is the CSV line number (so errors point at lines)."""
    frame = _read_csv(path, "metrics")
    if "node" not in frame.columns and "entity" in frame.columns:
        frame = frame.rename(columns={"entity": "node"})
    return frame


def load_graph(path: str | Path) -> pd.DataFrame:
    """The graph CSV (source,target) as a DataFrame indexed by CSV line number."""
    return _read_csv(path, "graph")


def graph_cycle(edges: pd.DataFrame) -> list[str] | None:
    """One cycle of the (source, target) graph as [a, b, ..., a], or None when it has none."""
    if edges is None or len(edges) == 0 or not {"source", "target"} <= set(edges.columns):
        return None
    succ: dict[str, list[str]] = {}
    for a, b in zip(edges["source"].astype(str), edges["target"].astype(str), strict=True):
        succ.setdefault(a, []).append(b)
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for root in list(succ):
        if state.get(root):
            continue
        path, stack = [root], [iter(succ.get(root, ()))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(succ.get(nxt, ())))
    return None


def _short(ts: pd.Timestamp | None) -> str:
    return iso_time(ts) or "-"


def _table(header: Sequence[str], rows: list[list[str]], right: set[int]) -> tuple[list[str], int]:
    """Aligned lines (header first) and the column where the last column starts."""
    widths = [max([len(header[i])] + [len(r[i]) for r in rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)]
        return "  ".join(parts).rstrip()

    return [line(header)] + [line(r) for r in rows], sum(w + 2 for w in widths[:-1])


def format_candidates(candidates: list[Candidate], *, start: pd.Timestamp, target: str | None) -> str:
    """The human table for the generic ranking: rank, node, score, onset and the top evidence."""
    scope = f" (candidates limited to {target} and what it depends on)" if target else ""
    out = [f"Root-cause candidates for the incident from {_short(start)}{scope}"]
    if not candidates:
        return "\n".join(out + ["no candidates"]) + "\n"
    if candidates[0].method == NO_SURE_MOVE_METHOD:
        out.append("ranked by standardised deviation alone: no candidate moved surely (sustained robust |z| 5)")
    elif candidates[0].method != "graph":
        out.append(f"ranked by {candidates[0].method} alone: the history is too short for the ranking's models")
    rows = []
    for c in candidates:
        top = c.evidence[0].describe() if c.evidence else "no series"
        more = len(c.evidence) - 1
        if more > 0:
            top += f"; +{more} more series"
        if not c.anomalous:
            top = "not anomalous; largest move: " + top
        rows.append([str(c.rank), c.node, f"{c.score:.3f}", _short(c.onset), top])
    lines, pad = _table(["rank", "node", "score", "onset", "top evidence"], rows, right={0, 2})
    body = [lines[0]]
    for c, text in zip(candidates, lines[1:], strict=True):
        body.append(text)
        if c.explains:
            body.append(" " * pad + "explains: " + ", ".join(c.explains))
        if c.explained_by:
            body.append(" " * pad + "explained by: " + ", ".join(c.explained_by))
    return "\n".join(out + body) + "\n"


def format_hypotheses(hypotheses: list[Hypothesis], *, start: pd.Timestamp, target: str | None) -> str:
    """The human table for the domain ranking: rank, entity, kind, score, onset and why."""
    scope = f" (limited to {target} and what it depends on)" if target else ""
    out = [f"Root-cause hypotheses for the incident from {_short(start)}{scope}"]
    if not hypotheses:
        return "\n".join(out + ["no hypotheses"]) + "\n"
    rows = [[str(h.rank), h.entity, h.kind, f"{h.score:.3f}", _short(h.onset), h.reason] for h in hypotheses]
    lines, pad = _table(["rank", "entity", "kind", "score", "onset", "why"], rows, right={0, 3})
    body = [lines[0]]
    for h, text in zip(hypotheses, lines[1:], strict=True):
        body.append(text)
        for e in h.evidence[:3]:
            body.append(" " * pad + (f"{e.node} " if e.node != h.entity else "") + e.describe())
        if h.explains:
            more = " ..." if len(h.explains) > 6 else ""
            body.append(" " * pad + f"explains {len(h.explains)}: " + ", ".join(h.explains[:6]) + more)
    return "\n".join(out + body) + "\n"


def run_rank(args: argparse.Namespace, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """The function behind ``cms rca rank``: 0 on success, 2 on bad input (message on stderr)."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            start = parse_time(args.start, name="start")
            metrics = load_metrics(args.metrics)
            options = dict(end=args.end, baseline=args.baseline, threshold=args.threshold, where="line")
            if args.ontology:
                ontology = load_ontology(args.ontology)
                answer: list[Any] = rank_incident(
                    metrics,
                    ontology.dependency_edges(),
                    start,
                    target=args.target,
                    top_k=args.top,
                    max_connections=ontology.max_connections(),
                    staleness_sla=ontology.staleness_slas(),
                    **options,
                )
            else:
                graph = load_graph(args.graph)
                loop = graph_cycle(graph)
                if loop:
                    warnings.warn(
                        f"the graph has a cycle ({' -> '.join(loop)}): nodes on it can explain each other, and a "
                        "node may be ranked as its own cause; each line says 'source depends on target'",
                        stacklevel=1,
                    )
                answer = rank(metrics, graph, start, target=args.target, top_k=args.top, **options)
    except (RcaInputError, OntologyError) as exc:
        print(f"error: {exc}", file=stderr)
        return 2
    for w in caught:
        print(f"warning: {w.message}", file=stderr)
    if args.json:
        key = "hypotheses" if args.ontology else "candidates"
        doc = {"start": iso_time(start), "target": args.target, key: [a.to_dict() for a in answer]}
        stdout.write(json.dumps(doc, indent=2) + "\n")
    elif args.ontology:
        stdout.write(format_hypotheses(answer, start=start, target=args.target))
    else:
        stdout.write(format_candidates(answer, start=start, target=args.target))
    return 0


INCIDENT_EPILOG = """\
The evidence is what the detector scores, read from the warehouse's fact marts (fct_infra_metrics,
fct_feed_status, fct_batch_runs, fct_stage_runs): minute series from 6 h before the start to 2 h after it,
each divided by its usual daily shape (the same clock window of the previous 7 days and of the same
weekday 1-3 weeks back, days of the same type only: weekday, Saturday, Sunday) except staleness and
database connections, which are judged against their limits as stored; run series from 7 days before.
The graph is the ontology's (CMS_DOMAIN_FILE or the packaged estate).

examples:
  cms rca incident --latest                  # what the detector last found, and why
  cms rca incident --at 2026-11-20T21:05:00Z
  cms rca incident --at 2026-11-20T21:05:00Z --target job:derivatives.eod_valuation --top 3
  cms rca incident --at 2026-11-20T21:05:00Z --json > rca.json
"""


def run_incident(
    args: argparse.Namespace, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """The function behind ``cms rca incident``: 0 on success, 2 on bad input (message on stderr)."""
    from cms_dagster import settings as settings_mod
    from cms_dagster.rca.evidence import EvidenceSettings
    from cms_dagster.rca.incident import analyse_incident
    from cms_dagster.warehouse.client import from_settings

    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        s = settings_mod.load()
        if s.warehouse == "duckdb" and not Path(s.duckdb_path).exists():  # connecting would create an empty one
            raise RcaInputError(
                f"no warehouse at {s.duckdb_path}: build it first (cms demo, or materialize the warehouse assets), "
                "or point CMS_DUCKDB_PATH at it"
            )
        wh = from_settings(s)
        ontology = load_ontology(s.domain_file or None)
        if args.at:
            start = parse_time(args.at, name="--at")
        else:
            start = _latest_episode_start(wh, ontology, stderr if args.json else stdout)
        evidence = EvidenceSettings(seasonal=not args.no_seasonal)
        result = analyse_incident(
            wh.query,
            start,
            ontology=ontology,
            target=args.target,
            settings=evidence,
            marts_schema=wh.marts,
        )
    except RcaInputError as exc:
        print(f"error: {exc}", file=stderr)
        return 2
    for w in result.warnings:
        print(f"warning: {w}", file=stderr)
    if args.json:
        stdout.write(json.dumps(result.to_dict(top=args.top), indent=2) + "\n")
    else:
        stdout.write(format_hypotheses(result.hypotheses[: args.top], start=result.start, target=args.target))
        stdout.write(f"({result.series} series, {len(result.evidence):,} points of evidence)\n")
    return 0


def _latest_episode_start(wh: Any, ontology: Ontology, stdout: TextIO) -> pd.Timestamp:
    """The start of the latest confirmed alarm episode in the 7 days up to the latest alarm (the warehouse's
    time, not the wall clock: a replayed or back-filled estate works the same) that is not the schedule: one
    every one of whose entities had a confirmed episode at the same time of day on earlier days or weeks (a
    batch window, a market open: ``explained_by_schedule``, the rule the incidents use) is skipped."""
    import datetime as dt

    from cms_dagster.detect.episodes import (
        SCHEDULE_LOOKBACK,
        NoAlarmsTable,
        episodes_between,
        explained_by_schedule,
        latest_alarm,
    )

    try:
        last = latest_alarm(wh.query)
        if last is None:
            raise RcaInputError("the detector has raised no alarm yet: nothing to analyse (give --at TIME)")
        until = last.to_pydatetime() + dt.timedelta(seconds=1)
        edges = ontology.dependency_edges()
        # the weeks before too: an episode that recurs daily or weekly is the schedule, not news
        since = until - dt.timedelta(days=7)
        earlier = episodes_between(
            wh.query, since - SCHEDULE_LOOKBACK.to_pytimedelta(), until, edges, marts_schema=wh.marts
        )
        episodes = [e for e in earlier if e.start >= pd.Timestamp(since)]
    except NoAlarmsTable as exc:
        raise RcaInputError(f"--latest reads the detector's alarms, and {exc}; or give --at TIME") from None
    confirmed = [e for e in episodes if e.confirmed]
    if not confirmed:
        raise RcaInputError(
            "no confirmed alarm episode in the 7 days up to the latest alarm: nothing to analyse "
            "(`cms detect alarms --since 7d --all` lists the lone alarms; give --at TIME to analyse one)"
        )
    news = [e for e in confirmed if not explained_by_schedule(e, earlier)]
    skipped = len(confirmed) - len(news)
    if not news:
        raise RcaInputError(
            f"the {len(confirmed)} confirmed alarm episode(s) of the 7 days up to the latest alarm all recur at "
            "the same time of day on earlier days or weeks (the schedule, not an incident): give --at TIME to "
            "analyse one"
        )
    last_episode = news[-1]
    later = sum(1 for e in confirmed if e.start > last_episode.start)
    names = ", ".join(last_episode.entities[:3]) + (" ..." if len(last_episode.entities) > 3 else "")
    stdout.write(f"latest confirmed episode: {last_episode.alarms} alarm(s) on {names}\n")
    if later:
        stdout.write(
            f"  ({later} later confirmed episode(s) skipped: they recur at the same time of day on earlier "
            f"days or weeks; {skipped} in the 7 days)\n"
        )
    return last_episode.start


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive finite number, e.g. 3")
    return v


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def register(subparsers: Any) -> None:
    """Add ``rca`` (with subcommands ``rank`` and ``incident``) to an argparse subparsers object."""
    rca = subparsers.add_parser(
        "rca",
        help="root-cause analysis: rank the likely causes of an incident",
        description="Root-cause analysis over metrics and a dependency graph.",
    )
    sub = rca.add_subparsers(dest="rca_command", metavar="{rank,incident}")
    sub.required = True
    p = sub.add_parser(
        "rank",
        help="rank root-cause candidates of an incident",
        description=(
            "Rank the nodes (or, with --ontology, the entity and incident kind) most likely to have caused an "
            "incident. Each series is compared with its own history before --start (robust z-score); a node "
            "ranks high when it moved, nothing it depends on moved before it, and it explains the anomalies "
            "of the nodes that depend on it. With --graph, each moved series is also predicted from its "
            "dependencies' series by a regression fitted on the history: a node scores what they leave "
            "unexplained (a caller that only passes a slowdown on keeps little), and when everything moved "
            "at the same point, that fit, not the graph alone, decides who explains whom. When the history "
            "before --start is too short for any of this (under 10 points per series), or no candidate moved "
            "surely (sustained robust |z| under 5), the nodes are ranked by standardised deviation (|x - mean| / "
            "sd, the max-|z| baseline) and the output says so. Each "
            "candidate comes with its evidence: which series moved, when, and by how much against the baseline."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--metrics", required=True, metavar="CSV", help="long metrics: time,node,metric,value")
    graph = p.add_mutually_exclusive_group(required=True)
    graph.add_argument(
        "--graph", metavar="CSV", help="dependency edges: source,target (source depends on target)"
    )
    graph.add_argument(
        "--ontology", metavar="YAML", help="an estate.yaml: rank (entity, incident kind) pairs"
    )
    p.add_argument(
        "--start",
        required=True,
        metavar="TIME",
        help="when the incident began (ISO-8601); earlier points are history",
    )
    p.add_argument("--end", metavar="TIME", help="ignore points after this time")
    p.add_argument("--target", metavar="NODE", help="only candidates this node depends on (and itself)")
    p.add_argument("--top", type=_positive_int, metavar="N", help="show at most N candidates")
    p.add_argument(
        "--baseline", metavar="DURATION", help="history to learn from before --start, e.g. 6h (default: all)"
    )
    p.add_argument(
        "--threshold",
        type=_positive_float,
        default=DEFAULT_THRESHOLD,
        help=f"sustained robust |z| from which a series counts as moved (default {DEFAULT_THRESHOLD:g})",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_rank)

    q = sub.add_parser(
        "incident",
        help="rank the root causes of an incident in the warehouse, from its start time",
        description=(
            "Rank (entity, incident kind) root-cause hypotheses for the incident that began at --at, from the "
            "series in the warehouse and the estate's dependency graph, with the evidence for each: which "
            "series moved, when, and by how much against their usual level."
        ),
        epilog=INCIDENT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    when = q.add_mutually_exclusive_group(required=True)
    when.add_argument("--at", metavar="TIME", help="when the incident began (ISO-8601, UTC)")
    when.add_argument(
        "--latest",
        action="store_true",
        help="the latest confirmed alarm episode (see `cms detect alarms`) that is not the schedule: one each of "
        "whose entities had a confirmed episode within 20 min of that time of day on 2 of the 3 days before, "
        "or of that time on that weekday both weeks before, is skipped",
    )
    q.add_argument("--target", metavar="ENTITY", help="only causes this entity depends on (and itself)")
    q.add_argument("--top", type=_positive_int, default=5, metavar="N", help="show N hypotheses (default 5)")
    q.add_argument(
        "--no-seasonal",
        action="store_true",
        help="rank the series as stored, without removing their usual daily shape",
    )
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.set_defaults(func=run_incident)
