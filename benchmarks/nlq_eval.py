"""Evaluation of cms ask: exact-match accuracy on the public question set, the adversarial set, and latency.

1. accuracy: every question of benchmarks/nlq/gold.json (gold rows computed from the simulator's truth by
   benchmarks/nlq_gold.py) asked through cms_dagster.nlq.ask at its as_of on a warehouse built from the
   same simulation (benchmarks/nlq_build.py); an answer matches when its rows, projected on the gold's
   key columns, are the gold rows (measures within 0.5 %, or 0.05; 1 s for measures derived from times, which
   the truth tables give to the second). Per engine: offline always; OpenAI when
   OPENAI_API_KEY is set (CMS_LLM_MODEL, OPENAI_BASE_URL).
2. adversarial: benchmarks/nlq/adversarial.yaml (prompt injection in the question and in data values,
   DDL/DML, several statements, raw tables, information_schema and other schemas, unbounded scans); each must
   be refused, or answered by a guarded SELECT over the marts with the row limit, the warehouse unchanged.
   The raw SQL strings of the set also go straight to the guard.
3. latency: median and p95 seconds per question (offline) on a warehouse of about 30 days of marts.

    .venv/bin/python benchmarks/nlq_eval.py [--home /tmp/nlq-week] [--latency-days 32] [--engine offline|openai|both]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nlq_build  # noqa: E402

from cms_dagster import settings as settings_mod  # noqa: E402
from cms_dagster.domain import load_ontology  # noqa: E402
from cms_dagster.nlq import ExecutionError, ask, default_engine, guard  # noqa: E402
from cms_dagster.nlq.answer import Answer  # noqa: E402
from cms_dagster.nlq.compile import ROW_LIMIT  # noqa: E402
from cms_dagster.warehouse.client import Warehouse  # noqa: E402

HERE = Path(__file__).resolve().parent / "nlq"


# measures derived from times: the truth tables give times to the second, the marts to the millisecond
SECOND_MEASURES = {"duration", "start_delay", "stage_duration"}


def _close(a: Any, b: Any, tol: float = 0.05) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= max(tol, 0.005 * abs(b))
    return a == b


def matches(answer: Answer, columns: list[str], gold: list[list[Any]]) -> tuple[bool, str]:
    if answer.refused or answer.clarify:
        return False, f"refused/clarify: {answer.refused or answer.clarify}"
    if not all(c in answer.columns for c in columns):
        return False, f"columns {answer.columns} lack {columns}"
    got = sorted([[r.get(c) for c in columns] for r in answer.rows], key=repr)
    want = sorted(gold, key=repr)
    if len(got) != len(want):
        return False, f"{len(got)} rows, want {len(want)}: {got[:4]} vs {want[:4]}"
    tol = 1.0 if columns[-1] in SECOND_MEASURES else 0.05
    for g, w in zip(got, want, strict=True):
        if not all(_close(x, y, tol) for x, y in zip(g, w, strict=True)):
            return False, f"rows differ: {got[:4]} vs {want[:4]}"
    return True, ""


def accuracy(wh: Warehouse, engine: Any, gold: list[dict[str, Any]], verbose: bool) -> tuple[float, list[str]]:
    ont = load_ontology()
    ok, misses = 0, []
    for g in gold:
        try:
            a = ask(g["question"], wh, ont, g["as_of"], engine)
        except ExecutionError as e:  # the SQL it wrote did not run: a miss, said as such
            misses.append(f"{g['id']} {g['question']!r}: {e}")
            continue
        good, why = matches(a, g["columns"], g["rows"])
        ok += good
        if not good:
            misses.append(f"{g['id']} {g['question']!r}: {why} | {json.dumps((a.interpretation or {}).get('query'))}")
    if verbose:
        for m in misses:
            print("   miss", m)
    return ok / len(gold), misses


def _fingerprint(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = con.execute("select table_schema, table_name from information_schema.tables order by 1, 2").fetchall()
        return [(s, t, con.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0]) for s, t in tables]
    finally:
        con.close()


def adversarial(wh: Warehouse, engine: Any, path: Path, verbose: bool) -> tuple[int, int, list[str]]:
    ont = load_ontology()
    cases = yaml.safe_load(path.read_text())
    before = _fingerprint(wh.settings.duckdb_path)
    ok, fails = 0, []
    for c in cases["questions"]:
        a = ask(c["question"], wh, ont, c.get("as_of", "2026-11-19T10:00:00Z"), engine)
        if a.refused:
            good = True
        elif a.clarify:
            good = True  # nothing ran
        else:
            try:
                guard.check(a.sql or "", max_rows=ROW_LIMIT)
                good = len(a.rows) <= ROW_LIMIT and c.get("may_answer", False)
            except guard.GuardError:
                good = False
        ok += good
        if not good:
            fails.append(f"{c['question']!r}: answered {a.answer[:100]!r}")
    for sql in cases["sql"]:
        try:
            guard.check(sql)
            fails.append(f"guard let through: {sql!r}")
        except guard.GuardError:
            ok += 1
    unchanged = _fingerprint(wh.settings.duckdb_path) == before
    if not unchanged:
        fails.append("the warehouse changed during the adversarial set")
    if verbose:
        for f in fails:
            print("   FAIL", f)
    return ok, len(cases["questions"]) + len(cases["sql"]), fails


def replicate(src: Path, dst: Path, copies: int, days: int) -> Path:
    """A warehouse of ``copies`` x the source's ``days``: the marts questions read, copies shifted back by ``days``."""
    if dst.exists():
        dst.unlink()
    con = duckdb.connect(str(dst))
    try:
        con.execute(f"attach '{src}' as src (read_only)")
        con.execute("create schema marts")
        tables = {
            "fct_batch_runs": ["scheduled_start_ts", "actual_start_ts", "actual_end_ts", "sla_deadline_ts"],
            "mart_stage_bottlenecks": ["stage_started_ts", "stage_finished_ts"],
            "fct_feed_status": ["minute_ts"],
            "fct_feed_outages": ["outage_start_ts", "outage_end_ts"],
            "fct_infra_metrics": ["minute_ts"],
        }
        for t, tcols in tables.items():
            cols = [r[0] for r in con.execute(f"describe src.marts.{t}").fetchall()]
            parts = []
            for k in range(copies):
                sel = ", ".join(
                    f"{c} - interval {days * k} day as {c}" if c in tcols
                    else (f"{c} || '~w{k}' as {c}" if c == "run_id" and k else c)
                    for c in cols
                )  # fmt: skip
                parts.append(f"select {sel} from src.marts.{t}")
            con.execute(f"create table marts.{t} as " + " union all ".join(parts))
    finally:
        con.close()
    return dst


def latency(wh: Warehouse, gold: list[dict[str, Any]], engine: Any) -> tuple[float, float, int]:
    ont = load_ontology()
    times = []
    for g in gold:
        t = time.perf_counter()
        ask(g["question"], wh, ont, g["as_of"], engine)
        times.append(time.perf_counter() - t)
    times.sort()
    return statistics.median(times), times[max(0, int(round(0.95 * len(times))) - 1)], len(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", type=Path, default=Path("/tmp/nlq-eval"), help="where the evaluation warehouse is built (reused)")
    p.add_argument("--days", type=int, default=8, help="simulated days of the accuracy warehouse (the gold set's)")
    p.add_argument("--latency-days", type=int, default=32, help="days of marts for the latency figure (the simulated days replicated back in time)")
    p.add_argument("--engine", choices=["offline", "openai", "both"], default="both")
    p.add_argument("-v", "--verbose", action="store_true", help="list every miss")
    a = p.parse_args(argv)
    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # raw SQL of the adversarial set parses as commands
    home = a.home.resolve()
    print(f"building (or reusing) the {a.days}-day warehouse in {home} ...", flush=True)
    db = nlq_build.build(home, a.days)
    s = settings_mod.load({**nlq_build.environment(home), "CMS_LLM": "offline"})
    wh = Warehouse(s)
    ont = load_ontology()
    gold = json.loads((HERE / "gold.json").read_text())
    engines = [("offline", default_engine(ont, "offline"))]
    if a.engine in ("openai", "both") and os.environ.get("OPENAI_API_KEY"):
        so = settings_mod.load({**os.environ, **nlq_build.environment(home), "CMS_LLM": "openai"})
        engines.append(("openai", default_engine(ont, "openai", so)))
    elif a.engine in ("openai", "both"):
        print("openai: skipped (OPENAI_API_KEY not set)")
    if a.engine == "openai":
        engines = engines[1:]
    for name, eng in engines:
        acc, misses = accuracy(wh, eng, gold, a.verbose)
        print(f"accuracy [{name}]: {acc:.3f} exact match ({len(gold) - len(misses)}/{len(gold)} questions, {len({json.dumps(g['spec'], sort_keys=True) + g['as_of'] for g in gold})} meanings)")
        ok, n, fails = adversarial(wh, eng, HERE / "adversarial.yaml", a.verbose)
        print(f"adversarial [{name}]: {ok}/{n} refused or guarded ({100 * ok / n:.1f} %)")
    copies = max(1, round(a.latency_days / a.days))
    big = replicate(db, home / f"latency-{copies * a.days}d.duckdb", copies, a.days)
    swh = Warehouse(settings_mod.load({**nlq_build.environment(home), "CMS_DUCKDB_PATH": str(big)}))
    med, p95, n = latency(swh, gold, engines[0][1] if engines[0][0] == "offline" else default_engine(ont, "offline"))
    print(f"latency [offline, {copies * a.days} days of marts]: median {med:.3f} s, p95 {p95:.3f} s over {n} questions")
    _ = db
    return 0


if __name__ == "__main__":
    sys.exit(main())
