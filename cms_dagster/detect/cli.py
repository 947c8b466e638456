"""`cms detect score`: score a NAB-format CSV (timestamp,value) and write it back with anomaly_score.

The lead wires :func:`register` into ``cms``; ``python -m cms_dagster.detect.cli score ...`` runs the same
command on its own.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from .api import DetectorState, score_series
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
one row per point, times strictly increasing (naive times are UTC). The output keeps the input's
timestamp and value text and adds anomaly_score in [0, 1): about 0.5 and above is an alarm. A score only
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
) -> DetectorState:
    """Read a timestamp,value CSV, score it and write the scored CSV to ``out``; return the new state.

    The function behind ``cms detect score`` (the benchmark calls it too). Raises
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
        allow_duplicates=allow_duplicates,
        row_offset=2,
        row_label="line",
    )
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["timestamp", "value", "anomaly_score", *(["kind", "baseline"] if details else [])])
    scores = frame.anomaly_score.tolist()
    if details:
        for t, v, s, k, b in zip(ts_text, val_text, scores, frame.kind.tolist(), frame.baseline.tolist(), strict=True):
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
        )
    except FileNotFoundError:
        print(f"{prog}: error: {args.input} does not exist; give the path of a timestamp,value CSV", file=sys.stderr)
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


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``detect`` (with subcommand ``score``) to a ``cms`` argparse subparsers object."""
    detect = subparsers.add_parser(
        "detect",
        help="anomaly detection on metric series",
        description="Streaming anomaly detection: spikes, dips, level shifts and drifts in metric series, "
        "scored point by point from past data only.",
        epilog="example:\n  cms detect score cpu.csv -o cpu_scored.csv",
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
    score.add_argument("-o", "--output", metavar="OUTPUT.csv", help="where to write the scored CSV (default: stdout)")
    score.add_argument(
        "--checkpoint-in", metavar="F", help="continue from this checkpoint (written by --checkpoint-out of the run before)"
    )
    score.add_argument("--checkpoint-out", metavar="F", help="write the detector state after the last point here")
    score.add_argument(
        "--details", action="store_true", help="also write kind (spike, dip, level_shift, drift, none) and baseline"
    )
    score.add_argument(
        "--duplicates",
        choices=("error", "keep"),
        default="error",
        help="rows with the same time as the row before: error (default), or keep and score each row",
    )
    score.set_defaults(func=_run_score)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry: ``python -m cms_dagster.detect.cli score INPUT.csv``."""
    parser = argparse.ArgumentParser(prog="cms")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    args = parser.parse_args(["detect", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
