"""``cms ask "QUESTION" [--as-of TIME] [--json]``: answer a question from the warehouse's marts."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

EPILOG = """\
examples:
  cms ask "Show me all derivatives batch jobs that failed in the last 2 hours"
  cms ask "Which upstream data feeds were delayed today?"
  cms ask "Are there any critical sub-stages taking longer than usual today?"
  cms ask "failure rate by asset class this week" --json
  cms ask "which databases had cpu above 80 % yesterday" --as-of 2026-11-18T10:00Z

what it understands:
  things     runs (batch jobs), sub-stages, feeds, outages, resources (RDS, SQS, Lambda, EKS)
  names      asset classes, jobs, stages and stage types, feeds, providers, resources (ids, names,
             synonyms from the ontology)
  measures   runs, failures, failure rate, duration, start delay, records per minute, SLA compliance,
             breaches, sub-stage duration, availability, staleness, latency, messages, outages,
             downtime, cpu, memory, connections, queue depth
  time       last N hours/days, today, yesterday, this week, last week, since 9am, on monday, a date;
             "today" is the business day in CMS_TIMEZONE (default UTC); none given = today
  compare    longer than usual (above 1.5 x the median of the 7 days before; the same weekday of the
             4 weeks before once 4 weeks of history exist), slower than last week, above 80 %%

The question becomes a structured query (shown under "understood"), never free SQL; the SQL is checked
(one SELECT over the allowed marts, with a row limit) and runs read-only with a timeout.
CMS_LLM=openai uses OpenAI (OPENAI_API_KEY, CMS_LLM_MODEL) to build the same structured query.
"""


def _table(columns: list[str], rows: list[dict[str, Any]], limit: int = 30) -> str:
    if not rows:
        return ""
    shown = rows[:limit]
    widths = {c: min(40, max(len(c), *(len(str(r.get(c, ""))) for r in shown))) for c in columns}
    line = "  ".join(c.ljust(widths[c]) for c in columns)
    out = [line, "  ".join("-" * widths[c] for c in columns)]
    for r in shown:
        out.append("  ".join(str("" if r.get(c) is None else r.get(c))[:40].ljust(widths[c]) for c in columns))
    if len(rows) > limit:
        out.append(f"... {len(rows) - limit} more rows (use --json for all)")
    return "\n".join(out)


def _cmd_ask(args: argparse.Namespace) -> int:
    from cms_dagster import settings as settings_mod
    from cms_dagster.domain import OntologyError, load_ontology
    from cms_dagster.nlq import ExecutionError, ask, default_engine
    from cms_dagster.nlq.timephrase import TimeError, parse_as_of
    from cms_dagster.warehouse.client import Warehouse

    try:
        s = settings_mod.load()
        ont = load_ontology(s.domain_file or None)
        as_of = parse_as_of(args.as_of)
        engine = default_engine(ont, s.llm, s)
        ans = ask(args.question, Warehouse(s), ont, as_of=as_of, engine=engine)
    except (ValueError, OntologyError, TimeError, ExecutionError) as e:
        print(f"cms ask: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(orjson.dumps(ans.to_dict(), option=orjson.OPT_INDENT_2).decode())
        return 0 if not ans.refused else 3
    if ans.refused:
        print(f"refused: {ans.refused}")
        return 3
    if ans.clarify:
        print(ans.clarify)
        return 0
    print(ans.answer)
    table = _table(ans.columns, ans.rows)
    if table:
        print()
        print(table)
    if ans.interpretation:
        print()
        print("understood: " + "; ".join(ans.interpretation.get("understood") or []))
        if "usual" in ans.interpretation:
            u = ans.interpretation["usual"]
            print(f"usual: {u['definition'] or u['reference']}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ask",
        help="answer a question in plain words from the warehouse (runs, sub-stages, feeds, resources)",
        description="Answer a question about the estate from the warehouse's marts: a one-sentence answer, the "
        "rows (with the warehouse's ids) and what was understood. Ambiguous questions get a question back; "
        "out-of-scope or unsafe ones are refused with the reason.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("question", help="the question, in quotes")
    p.add_argument("--as-of", metavar="TIME", help="answer as of this time (ISO 8601, UTC unless it says; default now)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: question, interpretation, sql, columns, rows, answer, refused, clarify",
    )
    p.set_defaults(func=_cmd_ask)
