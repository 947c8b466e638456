"""`cms detect score`: score a NAB-format CSV (timestamp,value) and write it back with anomaly_score;
`cms detect alarms`: the alarm episodes the detector found in the warehouse.

The CLI (cms_dagster/cli.py) lists :func:`register` in its areas; ``python -m cms_dagster.detect.cli score ...`` runs the same
command on its own.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from .api import DetectorState, score_series
from .config import DetectorConfig
from .errors import CheckpointError, DetectInputError, MissingColumnError
from .validation import check_columns

SCORE_EPILOG = """\
examples:
  cms detect score cpu.csv -o cpu_scored.csv
  cms detect score cpu.csv --details                 # to stdout, with kind and baseline columns
  # hourly: each run continues from the previous run's checkpoint
  cms detect score hour_13.csv -o scored_13.csv --checkpoint-out state_13.json
  cms detect score hour_14.csv -o scored_14.csv --checkpoint-in state_13.json --checkpoint-out state_14.json

The input is the Numenta Anomaly Benchmark (NAB) format: a header row with (at least) timestamp and value,
one row per point, times increasing (naive times are UTC). The output keeps the input's timestamp and
value text and adds anomaly_score in [0, 1): about 0.5 and above is an alarm. Every row is scored:
  late row      a row whose time is before a row already read (a point delivered late) is scored when it
                arrives, as if it came at the latest time read so far: it is judged against everything
                read before it, never moves the detector's clock back, and does not reorder the file
                (--late error refuses it instead, naming its line).
  repeated time a row with the same time as the row before needs --duplicates keep (each row is then
                scored as its own point, e.g. the repeated hour of a daylight-saving change). A score only
depends on the points up to it, and scoring a file in pieces with checkpoints gives the same scores as
scoring it whole.
"""


def score_csv(
    source: str | Path | IO[str],
    out: IO[str],
    *,
    checkpoint_in: bytes | None = None,
    details: bool = False,
    allow_duplicates: bool = False,
    allow_late: bool = True,
    config: DetectorConfig | None = None,
) -> DetectorState:
    """Read a timestamp,value CSV, score it and write the scored CSV to ``out``; return the new state.

    The function behind ``cms detect score`` (the benchmark calls it too, ``config`` to compare settings). Raises
    :class:`~cms_dagster.detect.errors.DetectInputError` subclasses on bad input, with the CSV line.
    """
    if isinstance(source, (str, Path)):
        with open(source, newline="") as fh:
            rows = list(csv.reader(fh))
        name = str(source)
    else:
        rows = list(csv.reader(source))
        name = "input"
    if not rows:
        raise MissingColumnError(f"{name} is empty; give a header row timestamp,value and one row per point")
    header = [h.strip() for h in rows[0]]
    check_columns(header, name)
    ti, vi = header.index("timestamp"), header.index("value")
    body = rows[1:]
    for n, row in enumerate(body):
        if len(row) <= max(ti, vi):
            raise MissingColumnError(
                f"line {n + 2}: {len(row)} field(s) where the header has {len(header)}; "
                "every row needs its timestamp and value"
            )
    ts_text = [row[ti].strip() for row in body]
    val_text = [row[vi].strip() for row in body]
    frame, state = score_series(
        ts_text,
        val_text,
        state=checkpoint_in,
        config=config,
        allow_duplicates=allow_duplicates,
        allow_late=allow_late,
        row_offset=2,
        row_label="line",
    )
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["timestamp", "value", "anomaly_score", *(["kind", "baseline"] if details else [])])
    scores = frame.anomaly_score.tolist()
    if details:
        for t, v, s, k, b in zip(
            ts_text, val_text, scores, frame.kind.tolist(), frame.baseline.tolist(), strict=True
        ):
            writer.writerow([t, v, repr(s), k, repr(b)])
    else:
        for t, v, s in zip(ts_text, val_text, scores, strict=True):
            writer.writerow([t, v, repr(s)])
    return state


def _run_score(args: argparse.Namespace) -> int:
    prog = "cms detect score"
    try:
        checkpoint = Path(args.checkpoint_in).read_bytes() if args.checkpoint_in else None
    except OSError as exc:
        print(f"{prog}: error: cannot read checkpoint {args.checkpoint_in}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        if args.input == "-":
            source: str | IO[str] = io.StringIO(sys.stdin.read())
        else:
            source = args.input
        buf = io.StringIO()
        state = score_csv(
            source,
            buf,
            checkpoint_in=checkpoint,
            details=args.details,
            allow_duplicates=args.duplicates == "keep",
            allow_late=args.late == "score",
        )
    except FileNotFoundError:
        print(
            f"{prog}: error: {args.input} does not exist; give the path of a timestamp,value CSV",
            file=sys.stderr,
        )
        return 1
    except CheckpointError as exc:
        print(f"{prog}: error: checkpoint {args.checkpoint_in}: {exc}", file=sys.stderr)
        return 1
    except DetectInputError as exc:
        print(f"{prog}: error: {args.input}: {exc}", file=sys.stderr)
        return 1
    if args.output:
        Path(args.output).write_text(buf.getvalue())
    else:
        sys.stdout.write(buf.getvalue())
    if args.checkpoint_out:
        Path(args.checkpoint_out).write_bytes(state.to_json())
    return 0


ALARMS_EPILOG = """\
examples:
  cms detect alarms                          # confirmed episodes of the last 24 hours
  cms detect alarms --since 7d --all         # a week, lone unconfirmed alarms too
  cms detect alarms --since 2026-11-20T00:00:00Z --until 2026-11-21T00:00:00Z --json

An episode is a group of alarms (rows of intelligence.anomalies with is_alarm) at most --gap apart on
related entities: the same one, or one depending on the other through the ontology (a feed, the stages
reading it, their job). It is confirmed when it spans two entities or more that depend on one another and
alarmed at most --gap apart (two namespaces joined only through their cluster's alarm under the batch are
one witness), or one alarm
scores 0.99 or more and that series alarms again after it on the same side of its usual value (the move
holds; one extreme point, one followed only by other metrics moving a little, or one followed by a
rebound past the usual, is a blip). Each confirmed episode is a problem worth a look: `cms rca incident --at START` ranks its causes;
one marked 'schedule' is one each of whose entities had a confirmed episode begin within 20 minutes of the
same time of day on 2 of the 3 days before, or of the same time on the same weekday both of the two weeks before
(a batch window, a market open): the estate's rhythm, not news, and it opens no incident report (a fault
during the batch moves something the batch does not, and stays news). In --json, recurs_daily also says
whether anything on one of its entities, confirmed or not, began at that time on 2 of the 3 days before.
Job and stage runs alarm when a run fails, or takes, starts or handles records far from the same job's runs
at the same schedule slot (see `cms_dagster/detect/runs.py`). A feed down, or stale past its SLA, 3 minutes
in a row alarms at score 1 at its third to fifth minute, whatever the detector has learned
(`cms_dagster/detect/sla.py`).
Alarms on a resource while a stage that works on it runs as usual (the stage raised no alarm) are the
batch at work: they stay in their episode but corroborate nothing, unless one scores 0.99 or more with a
value beyond anything its series did in the week before (a database at 799 connections where the week
never passed 110 is news whatever runs).
A trend (kind drift: the trend test on hourly medians speaks at the top of the hour for every series
creeping one way, so trends coincide by the clock) stays in its episode but corroborates nothing.
A 0.99 counts only on an entity the detector has watched for a day (from its first minute in the marts):
before that it has not seen the time of day, and the first market open or batch window scores as a fault.
Such an episode still confirms from two entities.
"""


def _since(text: str, now: dt.datetime) -> dt.datetime:
    """``24h``, ``90m``, ``7d`` before ``now``, or an ISO-8601 time."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        try:
            since = now - dt.timedelta(**{units[text[-1]]: float(text[:-1])})
        except OverflowError:
            since = None
        if since is None or since.year < 1971:
            raise DetectInputError(f"--since {text} reaches back before 1971: use a shorter duration (e.g. 30d) or a time")
        return since
    return _time(text, "--since")


def _time(text: str, name: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DetectInputError(
            f"{name} {text!r} is neither a duration (24h, 90m, 7d) nor an ISO-8601 time (2026-11-20T06:00:00Z)"
        ) from None
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


def _run_alarms(
    args: argparse.Namespace, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None
) -> int:
    import json

    import pandas as pd

    from cms_dagster import settings as settings_mod
    from cms_dagster.domain import load_ontology
    from cms_dagster.warehouse.client import from_settings

    from .episodes import (
        SCHEDULE_LOOKBACK,
        NoAlarmsTable,
        episodes_between,
        explained_by_schedule,
        recurs_daily,
    )

    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    now = dt.datetime.now(dt.timezone.utc)
    try:
        since = _since(args.since, now)
        until = _time(args.until, "--until") if args.until else now
        gap = pd.Timedelta(minutes=args.gap)
        s = settings_mod.load()
        wh = from_settings(s)
        # the weeks before the window too, to tell the schedule (the same episode every day or week) from news
        lookback = SCHEDULE_LOOKBACK.to_pytimedelta()
        everything = episodes_between(
            wh.query,
            since - lookback,
            until,
            load_ontology(s.domain_file or None).dependency_edges(),
            gap=gap,
            marts_schema=wh.marts,
        )
    except (DetectInputError, NoAlarmsTable) as exc:
        print(f"error: {exc}", file=stderr)
        return 2
    episodes = [e for e in everything if e.start >= pd.Timestamp(since)]
    # the rule incidents use: what is marked schedule here is what gets no incident report
    schedule = {id(e) for e in episodes if e.confirmed and explained_by_schedule(e, everything)}
    shown = [e for e in episodes if args.all or e.confirmed]
    if args.json:
        doc = {
            "since": since.isoformat().replace("+00:00", "Z"),
            "until": until.isoformat().replace("+00:00", "Z"),
            "episodes": [
                {**e.to_dict(), "schedule": id(e) in schedule, "recurs_daily": recurs_daily(e, everything)}
                for e in shown
            ],
        }
        stdout.write(json.dumps(doc, indent=2) + "\n")
        return 0
    lone = len(episodes) - sum(e.confirmed for e in episodes)
    stdout.write(
        f"{sum(e.confirmed for e in episodes)} confirmed episode(s) and {lone} lone alarm group(s) between "
        f"{since:%Y-%m-%d %H:%M} and {until:%Y-%m-%d %H:%M} UTC"
        + ("" if args.all or not lone else " (--all shows the lone ones)")
        + "\n"
    )
    if schedule:
        stdout.write(
            f"{len(schedule)} of the confirmed ones are the schedule: each of their entities had a confirmed episode "
            "at that time of day on 2 of the 3 days before, or on that weekday both weeks before (marked "
            "'schedule': batch windows, market opens; they open no incident)\n"
        )
    if not shown:
        return 0
    stdout.write(
        f"{'start (UTC)':20} {'minutes':>7} {'alarms':>6} {'peak':>5}  {'':9} entities (first alarm first)\n"
    )
    for e in shown:
        minutes = (e.end - e.start).total_seconds() / 60
        names = ", ".join(e.entities[:4]) + (
            f" and {len(e.entities) - 4} more" if len(e.entities) > 4 else ""
        )
        state = ("schedule" if id(e) in schedule else "confirmed") if e.confirmed else "lone"
        stdout.write(
            f"{e.start:%Y-%m-%dT%H:%MZ}    {minutes:7.0f} {e.alarms:6d} {e.peak_score:5.2f}  {state:9} {names}\n"
        )
    first = next((e for e in reversed(shown) if e.confirmed and id(e) not in schedule), None)
    if first is not None:
        stdout.write(f"\nwhy: cms rca incident --at {first.start:%Y-%m-%dT%H:%M:%SZ}\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``detect`` (with subcommands ``score`` and ``alarms``) to a ``cms`` argparse subparsers object."""
    detect = subparsers.add_parser(
        "detect",
        help="anomaly detection on metric series",
        description="Streaming anomaly detection: spikes, dips, level shifts and drifts in metric series, "
        "scored point by point from past data only.",
        epilog="examples:\n  cms detect score cpu.csv -o cpu_scored.csv\n  cms detect alarms --since 7d",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    detect.set_defaults(func=lambda args: (detect.print_help(), 2)[1])
    sub = detect.add_subparsers(dest="detect_command", metavar="COMMAND")
    score = sub.add_parser(
        "score",
        help="score a timestamp,value CSV (NAB format): adds anomaly_score",
        description="Score every point of a timestamp,value CSV and write the CSV back with an "
        "anomaly_score column (the Numenta Anomaly Benchmark format).",
        epilog=SCORE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    score.add_argument("input", help="CSV with a header row containing timestamp and value ('-' reads stdin)")
    score.add_argument(
        "-o", "--output", metavar="OUTPUT.csv", help="where to write the scored CSV (default: stdout)"
    )
    score.add_argument(
        "--checkpoint-in",
        metavar="F",
        help="continue from this checkpoint (written by --checkpoint-out of the run before)",
    )
    score.add_argument(
        "--checkpoint-out", metavar="F", help="write the detector state after the last point here"
    )
    score.add_argument(
        "--details",
        action="store_true",
        help="also write kind (spike, dip, level_shift, drift, none) and baseline",
    )
    score.add_argument(
        "--duplicates",
        choices=("error", "keep"),
        default="error",
        help="rows with the same time as the row before: error (default), or keep and score each row",
    )
    score.add_argument(
        "--late",
        choices=("score", "error"),
        default="score",
        help="rows older than a row already read: score them (default: in arrival order, at the latest time "
        "read so far, keeping their own timestamp in the output), or stop with an error",
    )
    score.set_defaults(func=_run_score)
    alarms = sub.add_parser(
        "alarms",
        help="list the alarm episodes the detector found in the warehouse",
        description="Group the detector's alarms (intelligence.anomalies) into episodes through time and the "
        "dependency graph, and list them: when each began, how many alarms on which entities, and whether "
        "it is corroborated.",
        epilog=ALARMS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    alarms.add_argument(
        "--since", default="24h", help="a duration before now (24h, 90m, 7d) or a time (default 24h)"
    )
    alarms.add_argument("--until", help="an ISO-8601 time (default: now)")
    alarms.add_argument(
        "--gap", type=float, default=30.0, metavar="MINUTES", help="longest gap inside an episode (30)"
    )
    alarms.add_argument("--all", action="store_true", help="also list lone, unconfirmed alarm groups")
    alarms.add_argument("--json", action="store_true", help="print JSON instead of a table")
    alarms.set_defaults(func=_run_alarms)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry: ``python -m cms_dagster.detect.cli score INPUT.csv``."""
    parser = argparse.ArgumentParser(prog="cms")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    args = parser.parse_args(["detect", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
