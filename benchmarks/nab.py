"""NAB figure: run `cms detect score` over the NAB data and score it by NAB's rules.

    .venv/bin/python benchmarks/nab.py                 # data in $CMS_NAB_DIR or ../shared/nab
    .venv/bin/python benchmarks/nab.py --subprocess    # literally run the CLI once per file
    .venv/bin/python benchmarks/nab.py --write-results /tmp/nab_scores

Prints per file the standard profile's outcome (windows detected, missed, false-positive rows, score),
then per profile the threshold that maximizes the corpus total, the raw, null and perfect totals and the
normalized score; then, for the standard profile, each category scored at the threshold chosen on the other
categories alone (leave one category out: the honest figure, since the threshold is the one setting fitted
to the data), and the speed. The detector runs with the same settings on every file; each file is
scored by the same function the CLI uses (`score_csv`), with NAB's rows kept as they are
(`--duplicates keep`: two NAB files repeat a timestamp at a daylight-saving change).
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cms_dagster.detect.cli import score_csv  # noqa: E402
from cms_harness import nab_scoring  # noqa: E402

ALARM_LEVEL = 0.5  # `cms detect score --help`: about 0.5 and above is an alarm


def default_nab_dir() -> Path:
    env = os.environ.get("CMS_NAB_DIR")
    return Path(env) if env else (REPO / ".." / "shared" / "nab").resolve()


def _score_file(job: tuple[str, str, bool]) -> tuple[str, str, float]:
    """Score one CSV; returns (name, scored CSV text, CPU seconds spent scoring it)."""
    name, path, use_subprocess = job
    start = time.process_time()
    if use_subprocess:
        proc = subprocess.run(
            [sys.executable, "-m", "cms_dagster.detect.cli", "score", path, "--duplicates", "keep"],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"cms detect score {path} failed: {proc.stderr.strip()}")
        text = proc.stdout
    else:
        out = io.StringIO()
        score_csv(path, out, allow_duplicates=True)
        text = out.getvalue()
    if use_subprocess:  # the work was done by the child: count its CPU time
        return name, text, float("nan")
    return name, text, time.process_time() - start


def cross_validated(
    corpus: list[tuple[nab_scoring.LabeledFile, object]], profile: nab_scoring.CostProfile
) -> tuple[list[tuple[str, int, int, float, float, float]], float]:
    """Leave one category out: each category (data/<category>/...) is scored at the threshold that maximizes
    the other categories' total, so no file is scored at a threshold chosen with it. Returns per category
    (name, files, windows, threshold from the others, its raw score there, its raw score at the threshold
    of the whole corpus) and the corpus total of the held-out scores."""
    cats: dict[str, list] = {}
    for item in corpus:
        cats.setdefault(item[0].name.split("/")[0], []).append(item)
    whole, _ = nab_scoring.optimize_threshold(corpus, profile)
    rows, total = [], 0.0
    for cat, items in sorted(cats.items()):
        others = [x for c, xs in cats.items() if c != cat for x in xs]
        threshold = nab_scoring.optimize_threshold(others, profile)[0] if others else whole
        held = sum(nab_scoring.score_file(s, lab, threshold, profile).score for lab, s in items)
        inside = sum(nab_scoring.score_file(s, lab, whole, profile).score for lab, s in items)
        rows.append((cat, len(items), sum(len(lab.windows) for lab, _ in items), threshold, held, inside))
        total += held
    return rows, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nab-dir", type=Path, default=None, help="NAB directory (default $CMS_NAB_DIR or ../shared/nab)")
    parser.add_argument("--jobs", type=int, default=2, help="files scored in parallel (default 2)")
    parser.add_argument("--subprocess", action="store_true", help="run the CLI in a subprocess per file")
    parser.add_argument("--write-results", type=Path, help="also write each scored CSV under this directory")
    parser.add_argument("--quiet", action="store_true", help="print only the summary, not the per-file table")
    args = parser.parse_args(argv)

    root = (args.nab_dir or default_nab_dir()).resolve()
    windows_path = root / "labels" / "combined_windows.json"
    if not windows_path.exists():
        print(f"no NAB labels at {windows_path}; set CMS_NAB_DIR to a NAB directory (data/, labels/)", file=sys.stderr)
        return 1
    windows = nab_scoring.load_windows(windows_path)
    profiles_path = root / "profiles.json"
    profiles = nab_scoring.load_profiles(profiles_path) if profiles_path.exists() else nab_scoring.DEFAULT_PROFILES
    names = sorted(n for n in windows if (root / "data" / n).exists())
    missing = sorted(set(windows) - set(names))
    if not names:
        print(f"none of the labelled files is under {root / 'data'}", file=sys.stderr)
        return 1

    jobs = [(n, str(root / "data" / n), args.subprocess) for n in names]
    wall = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(_score_file, jobs))
    else:
        results = [_score_file(j) for j in jobs]
    wall = time.perf_counter() - wall

    corpus = []
    busy = 0.0
    points = 0
    for name, text, seconds in results:
        scored = pd.read_csv(io.StringIO(text), dtype={"timestamp": str})
        ts = pd.to_datetime(scored["timestamp"], format="ISO8601").to_numpy(dtype="datetime64[ns]")
        labeled = nab_scoring.LabeledFile.from_timestamps(name, ts, windows[name])
        corpus.append((labeled, scored["anomaly_score"].to_numpy(dtype=float)))
        busy += seconds
        points += len(scored)
        if args.write_results:
            target = args.write_results / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    results_by_profile = nab_scoring.evaluate(corpus, profiles)

    print(f"NAB data: {root} ({len(names)} files, {points} rows, "
          f"{sum(len(lab.windows) for lab, _ in corpus)} windows)")
    if missing:
        print(f"  labelled but absent (not scored): {len(missing)} files")
    if not args.quiet and "standard" in results_by_profile:
        std = results_by_profile["standard"]
        print(f"\nper file, standard profile at threshold {std.threshold:.4f}:")
        print(f"  {'file':58s} {'rows':>5s} {'win':>3s} {'tp':>3s} {'fn':>3s} {'fp':>3s} {'score':>7s}")
        for (lab, _), fs in zip(corpus, std.files, strict=True):
            print(f"  {fs.name:58s} {lab.n_rows:5d} {len(lab.windows):3d} {fs.tp:3d} {fs.fn:3d} {fs.fp:3d} {fs.score:7.3f}")

    print(f"\n{'profile':20s} {'threshold':>9s} {'score':>8s} {'null':>8s} {'perfect':>8s} {'normalized':>10s}")
    for name, res in results_by_profile.items():
        print(f"{name:20s} {res.threshold:9.4f} {res.score:8.3f} {res.null_score:8.3f} "
              f"{res.perfect_score:8.3f} {res.normalized:10.1f}")
    if "standard" in results_by_profile and len({lab.name.split("/")[0] for lab, _ in corpus}) > 1:
        std = results_by_profile["standard"]
        rows, held_total = cross_validated(corpus, std.profile)
        print("\nstandard profile, threshold chosen without the category (leave one category out):")
        print(f"  {'category':24s} {'files':>5s} {'win':>4s} {'threshold':>9s} {'held-out':>9s} {'in-sample':>9s}")
        for cat, n, w, t, held, inside in rows:
            print(f"  {cat:24s} {n:5d} {w:4d} {t:9.4f} {held:9.3f} {inside:9.3f}")
        held_norm = nab_scoring.normalize(held_total, std.null_score, std.perfect_score)
        print(f"  corpus: {held_total:.3f} held-out = {held_norm:.1f} normalized "
              f"(in-sample, one threshold for all: {std.normalized:.1f})")
        fixed = sum(nab_scoring.score_file(s, lab, ALARM_LEVEL, std.profile).score for lab, s in corpus)
        print(f"  at the detector's own alarm level {ALARM_LEVEL} (nothing fitted): {fixed:.3f} = "
              f"{nab_scoring.normalize(fixed, std.null_score, std.perfect_score):.1f} normalized")

    mode = "CLI subprocess per file" if args.subprocess else "in-process score_csv, the CLI's function"
    print(f"\nspeed ({mode}, {args.jobs} job(s)): wall {wall:.1f} s = {len(names) / wall:.2f} series/s, "
          f"{points / wall:,.0f} points/s (CSV read and write included)")
    if not args.subprocess:
        print(f"  per CPU core: {len(names) / busy:.2f} series/s, {points / busy:,.0f} points/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
