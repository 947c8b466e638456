"""NAB figure: run `cms detect score` over the NAB data and score it by NAB's rules.

    .venv/bin/python benchmarks/nab.py                 # data in $CMS_NAB_DIR or ../shared/nab
    .venv/bin/python benchmarks/nab.py --subprocess    # literally run the CLI once per file
    .venv/bin/python benchmarks/nab.py --write-results /tmp/nab_scores
    .venv/bin/python benchmarks/nab.py --candidate history=500 --candidate combine_top=2   # weigh settings

Prints per file the standard profile's outcome (windows detected, missed, false-positive rows, score),
then per profile the threshold that maximizes the corpus total, the raw, null and perfect totals and the
normalized score; then, for the standard profile, each category scored at the threshold chosen on the other
categories alone (leave one category out: the honest figure, since the threshold is the one setting fitted
to the data), and the speed. The detector runs with the same settings on every file; each file is
scored by the same function the CLI uses (`score_csv`), with NAB's rows kept as they are
(`--duplicates keep`: two NAB files repeat a timestamp at a daylight-saving change).

Which figures are which. Every figure on these files is a *development* figure: the detector's settings were
chosen looking at them. The cross-validated figures remove only the threshold's fit (each file is scored at a
threshold chosen without it: leave one file out, repeated 4-fold by file within categories, leave one
category out). The perturbed figures run the same settings on the same files averaged to 15-minute points, with
30 % of their rows dropped at random, and averaged to 30-minute and to hourly points (NAB's other series are
hourly, half-hourly or irregular): how much the score depends on the sampling these files happen to have. The
label windows keep their times, so a coarser file keeps its windows over fewer rows. The last run adds a
constant, 10 times the file's range, to every value: an anomaly is the same in any unit, so a detector should
score it the same (NAB's other files include temperatures, speeds and latencies far from zero). The hourly files are
short (336 rows from a 4,032-row file, 50 of them probationary): their figure also measures how soon the
detector can score (it scores nothing before 100 points of history), not only the sampling.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import re
import subprocess
import sys
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cms_dagster.detect.cli import score_csv  # noqa: E402
from cms_dagster.detect.config import DetectorConfig  # noqa: E402
from cms_harness import nab_scoring  # noqa: E402

ALARM_LEVEL = 0.5  # `cms detect score --help`: about 0.5 and above is an alarm


def default_nab_dir() -> Path:
    env = os.environ.get("CMS_NAB_DIR")
    return Path(env) if env else (REPO / ".." / "shared" / "nab").resolve()


PERTURBATIONS = {
    "15-minute means (every 3 rows averaged)": "mean3",
    "30 % of rows dropped at random": "drop30",
    "30-minute means (every 6 rows averaged)": "mean6",
    "hourly means (every 12 rows averaged)": "mean12",
    "a constant added (10x the file's range)": "offset10",
}


def perturb(text: str, kind: str, name: str) -> str:
    """The CSV ``text`` resampled: ``meanK`` (``mean3``, ``mean6``, ``mean12``) replaces each run of K rows by one
    row at the first one's time with their mean value (what a metric aggregated K times coarser would show; a
    last run shorter than K is dropped), ``drop30`` drops 30 % of the rows at random (seeded by the file name,
    so every run drops the same rows), ``offsetK`` adds K times the file's range to every value (the same series
in a unit with another zero: degrees Fahrenheit instead of Celsius, kelvin; nothing about it should change)."""
    lines = text.splitlines()
    header, body = lines[0], lines[1:]
    k = int(kind[4:]) if re.fullmatch(r"mean[1-9][0-9]*", kind) else 0
    if re.fullmatch(r"offset[1-9][0-9]*", kind):
        values = [float(row.split(",")[1]) for row in body]
        shift = int(kind[6:]) * ((max(values) - min(values)) or 1.0)
        kept = [f"{row.split(',')[0]},{v + shift!r}" for row, v in zip(body, values, strict=True)]
    elif k:
        kept = []
        for i in range(0, len(body) - k + 1, k):
            parts = [row.split(",") for row in body[i : i + k]]
            kept.append(f"{parts[0][0]},{sum(float(p[1]) for p in parts) / k!r}")
    elif kind == "drop30":
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        kept = [row for row, u in zip(body, rng.random(len(body)), strict=True) if u >= 0.3]
    else:
        raise ValueError(f"unknown perturbation {kind!r}; known: {sorted(PERTURBATIONS.values())}")
    return "\n".join([header, *kept]) + "\n"


def parse_settings(text: str) -> dict:
    """``"history=500,mean_windows=[4,12]"`` -> the detector settings it names (values as JSON, else strings)."""
    known = {f.name for f in dataclasses.fields(DetectorConfig)}
    out: dict = {}
    for part in filter(None, (p.strip() for p in re.split(r",(?=\s*\w+=)", text))):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in known:
            raise ValueError(f"--candidate {text!r}: {part!r} is not NAME=VALUE with a detector setting "
                             f"(known: {', '.join(sorted(known))})")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value.strip()
    DetectorConfig.from_dict(out)  # refuse bad values now, not in a worker
    return out


def _score_file(job: tuple) -> tuple[str, str, float]:
    """Score one CSV; returns (name, scored CSV text, CPU seconds spent scoring it)."""
    name, path, use_subprocess, *rest = job
    kind = rest[0] if rest else None
    settings = rest[1] if len(rest) > 1 else None
    start = time.process_time()
    if kind is not None or settings:
        out = io.StringIO()
        text = Path(path).read_text()
        source = io.StringIO(perturb(text, kind, name) if kind else text)
        config = DetectorConfig.from_dict(settings) if settings else None
        score_csv(source, out, allow_duplicates=True, config=config)
        return name, out.getvalue(), time.process_time() - start
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


def category(labeled: nab_scoring.LabeledFile) -> str:
    return labeled.name.split("/")[0]


def leave_one_file_out(corpus: Sequence[tuple[nab_scoring.LabeledFile, object]]) -> list[list[list[int]]]:
    """One partition of the corpus: each file alone."""
    return [[[i] for i in range(len(corpus))]]


def stratified_folds(
    corpus: Sequence[tuple[nab_scoring.LabeledFile, object]], k: int = 4, repeats: int = 5, seed: int = 0
) -> list[list[list[int]]]:
    """``repeats`` partitions of the corpus into ``k`` folds of files; each category's files are shuffled and
    dealt to the folds in turn, so every fold holds about a ``k``-th of every category."""
    rng = np.random.default_rng(seed)
    by_cat: dict[str, list[int]] = {}
    for i, (lab, _) in enumerate(corpus):
        by_cat.setdefault(category(lab), []).append(i)
    partitions = []
    start = 0
    for _ in range(repeats):
        folds: list[list[int]] = [[] for _ in range(k)]
        for cat in sorted(by_cat):
            for j, i in enumerate(rng.permutation(by_cat[cat]).tolist()):
                folds[(start + j) % k].append(i)
            start += len(by_cat[cat])  # the next category starts where this one stopped (folds stay even)
        partitions.append([f for f in folds if f])
    return partitions


def held_out_score(
    candidates: Sequence[Sequence[tuple[nab_scoring.LabeledFile, object]]],
    partitions: Sequence[Sequence[Sequence[int]]],
    profile: nab_scoring.CostProfile,
) -> tuple[float, list[tuple[int, float]]]:
    """Nested cross-validation: for each fold, the candidate (the same files scored under one of several
    settings) and threshold that maximize the total of the *other* files; the fold's files are then scored
    with that choice. Returns the mean over partitions of the held-out corpus total, and each fold's choice
    (candidate index, threshold). With one candidate only the threshold is chosen."""
    totals, choices = [], []
    n = len(candidates[0])
    for folds in partitions:
        total = 0.0
        for fold in folds:
            held = set(fold)
            best = (-np.inf, 0, nab_scoring.NO_DETECTION_THRESHOLD)
            for c, corpus in enumerate(candidates):
                train = [corpus[i] for i in range(n) if i not in held]
                t, sc = nab_scoring.optimize_threshold(train, profile)
                if sc > best[0] + 1e-12:
                    best = (sc, c, t)
            _, c, t = best
            choices.append((c, t))
            total += sum(
                nab_scoring.score_file(candidates[c][i][1], candidates[c][i][0], t, profile).score for i in fold
            )
        totals.append(total)
    return float(np.mean(totals)), choices


def _load_corpus(results: list[tuple[str, str, float]], windows: dict) -> list[tuple[nab_scoring.LabeledFile, np.ndarray]]:
    corpus = []
    for name, text, _ in results:
        scored = pd.read_csv(io.StringIO(text), dtype={"timestamp": str})
        ts = pd.to_datetime(scored["timestamp"], format="ISO8601").to_numpy(dtype="datetime64[ns]")
        corpus.append(
            (nab_scoring.LabeledFile.from_timestamps(name, ts, windows[name]), scored["anomaly_score"].to_numpy(dtype=float))
        )
    return corpus


def _run(jobs: list[tuple], n_jobs: int) -> list[tuple[str, str, float]]:
    if n_jobs > 1:
        with ProcessPoolExecutor(max_workers=n_jobs) as pool:
            return list(pool.map(_score_file, jobs))
    return [_score_file(j) for j in jobs]


def perturbed_figures(
    names: Sequence[str], root: Path, windows: dict, kind: str, settings: dict | None,
    profile: nab_scoring.CostProfile, n_jobs: int,
) -> tuple[float, float, int]:
    """The files resampled by ``kind`` and scored under ``settings`` (None: the defaults): the standard profile's
    normalized score at the alarm level, at the resampled corpus's own best threshold, and its window count."""
    jobs = [(n, str(root / "data" / n), False, kind, settings) for n in names]
    pert = _load_corpus(_run(jobs, n_jobs), windows)
    res = nab_scoring.evaluate(pert, {"standard": profile})["standard"]
    at = sum(nab_scoring.score_file(s, lab, ALARM_LEVEL, profile).score for lab, s in pert)
    return (nab_scoring.normalize(at, res.null_score, res.perfect_score), res.normalized,
            sum(len(lab.windows) for lab, _ in pert))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nab-dir", type=Path, default=None, help="NAB directory (default $CMS_NAB_DIR or ../shared/nab)")
    parser.add_argument("--jobs", type=int, default=2, help="files scored in parallel (default 2)")
    parser.add_argument("--subprocess", action="store_true", help="run the CLI in a subprocess per file")
    parser.add_argument("--write-results", type=Path, help="also write each scored CSV under this directory")
    parser.add_argument("--quiet", action="store_true", help="print only the summary, not the per-file table")
    parser.add_argument(
        "--candidate",
        action="append",
        default=[],
        metavar="NAME=VALUE,...",
        help="other detector settings to weigh against the defaults (repeatable): each is scored too (best threshold, "
        "alarm level, leave one file out, and each resampling at the alarm level unless --no-perturb), and the "
        "cross-validation then chooses settings and threshold on the other files (nested)",
    )
    parser.add_argument("--no-perturb", action="store_true",
                        help="skip the perturbed runs (15-minute means, 30 %% of rows dropped, 30-minute and hourly means, "
                        "a constant added)")
    args = parser.parse_args(argv)
    try:
        candidates = [parse_settings(c) for c in args.candidate]
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))

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
    results = _run(jobs, args.jobs)
    wall = time.perf_counter() - wall

    corpus = _load_corpus(results, windows)
    busy = sum(seconds for _, _, seconds in results)
    points = sum(lab.n_rows for lab, _ in corpus)
    if args.write_results:
        for name, text, _ in results:
            target = args.write_results / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    results_by_profile = nab_scoring.evaluate(corpus, profiles)
    perturbed_defaults: dict[str, float] = {}

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

    print("\ndevelopment figures (the settings were chosen on these files; NAB's rule: one threshold per profile,")
    print("the one that maximizes the corpus total):")
    print(f"{'profile':20s} {'threshold':>9s} {'score':>8s} {'null':>8s} {'perfect':>8s} {'normalized':>10s}")
    for name, res in results_by_profile.items():
        print(f"{name:20s} {res.threshold:9.4f} {res.score:8.3f} {res.null_score:8.3f} "
              f"{res.perfect_score:8.3f} {res.normalized:10.1f}")
    if "standard" in results_by_profile:
        std = results_by_profile["standard"]
        norm = lambda total: nab_scoring.normalize(total, std.null_score, std.perfect_score)  # noqa: E731
        fixed = sum(nab_scoring.score_file(s, lab, ALARM_LEVEL, std.profile).score for lab, s in corpus)
        print(f"\nstandard profile at the detector's own alarm level {ALARM_LEVEL} (no threshold fitted): "
              f"{fixed:.3f} = {norm(fixed):.1f} normalized")
        print("standard profile, each file scored at a threshold chosen without it (cross-validation):")
        lofo, _ = held_out_score([corpus], leave_one_file_out(corpus), std.profile)
        print(f"  leave one file out:                          {lofo:8.3f} = {norm(lofo):.1f} normalized")
        if len(corpus) >= 8:
            kfold, _ = held_out_score([corpus], stratified_folds(corpus), std.profile)
            print(f"  4-fold by file within categories, 5 repeats: {kfold:8.3f} = {norm(kfold):.1f} normalized")
        if len({category(lab) for lab, _ in corpus}) > 1:
            rows, held_total = cross_validated(corpus, std.profile)
            print(f"  leave one category out:                      {held_total:8.3f} = {norm(held_total):.1f} "
                  "normalized")
            print(f"    {'category':24s} {'files':>5s} {'win':>4s} {'threshold':>9s} {'held-out':>9s} {'in-sample':>9s}")
            for cat, n, w, t, held, inside in rows:
                print(f"    {cat:24s} {n:5d} {w:4d} {t:9.4f} {held:9.3f} {inside:9.3f}")
        if not args.no_perturb and not args.subprocess:
            print("standard profile, the same files perturbed (same settings; normalized at the alarm level "
                  f"{ALARM_LEVEL} / at the perturbed corpus's own best threshold):")
            for label, kind in PERTURBATIONS.items():
                at, best, n_windows = perturbed_figures(names, root, windows, kind, None, std.profile, args.jobs)
                perturbed_defaults[kind] = at
                print(f"  {label:38s} {at:5.1f} / {best:5.1f} ({n_windows} windows)")

    if candidates and "standard" in results_by_profile:
        std = results_by_profile["standard"]
        print("\nstandard profile, settings weighed against the defaults (development: each scored on all files; then"
              " nested cross-validation, settings and threshold chosen without the held-out files):")
        scored = [corpus]
        kinds = list(PERTURBATIONS.values()) if perturbed_defaults else []
        print(f"  {'settings':44s} {'best threshold':>14s} {'at ' + str(ALARM_LEVEL):>7s} {'lofo':>5s}"
              + "".join(f" {k:>6s}" for k in kinds))
        for label, settings in [("defaults", {}), *zip(args.candidate, candidates, strict=True)]:
            if settings:
                jobs_c = [(n, str(root / "data" / n), False, None, settings) for n in names]
                scored.append(_load_corpus(_run(jobs_c, args.jobs), windows))
            c = scored[-1]
            best = nab_scoring.evaluate(c, {"standard": std.profile})["standard"].normalized
            at = sum(nab_scoring.score_file(s, lab, ALARM_LEVEL, std.profile).score for lab, s in c)
            lofo_c, _ = held_out_score([c], leave_one_file_out(c), std.profile)
            pert_c = [perturbed_defaults[k] if not settings else
                      perturbed_figures(names, root, windows, k, settings, std.profile, args.jobs)[0] for k in kinds]
            print(f"  {label:44s} {best:14.1f} {nab_scoring.normalize(at, std.null_score, std.perfect_score):7.1f} "
                  f"{nab_scoring.normalize(lofo_c, std.null_score, std.perfect_score):5.1f}"
                  + "".join(f" {v:6.1f}" for v in pert_c))
        for title, parts in (("leave one file out", leave_one_file_out(corpus)),
                             ("4-fold by file within categories, 5 repeats", stratified_folds(corpus))):
            if len(parts[0]) < 2:
                continue
            total, choices = held_out_score(scored, parts, std.profile)
            picked = sorted({c for c, _ in choices})
            print(f"  nested, {title}: {nab_scoring.normalize(total, std.null_score, std.perfect_score):.1f} "
                  f"normalized (settings chosen: {', '.join('defaults' if c == 0 else args.candidate[c - 1] for c in picked)})")

    mode = "CLI subprocess per file" if args.subprocess else "in-process score_csv, the CLI's function"
    print(f"\nspeed ({mode}, {args.jobs} job(s)): wall {wall:.1f} s = {len(names) / wall:.2f} series/s, "
          f"{points / wall:,.0f} points/s (CSV read and write included)")
    if not args.subprocess:
        print(f"  per CPU core: {len(names) / busy:.2f} series/s, {points / busy:,.0f} points/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
