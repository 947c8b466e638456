"""What an injected volume spike looks like to the detector, scored three ways, on kept builds.

    .venv/bin/python benchmarks/incidents_eval.py --seed S --days D --keep DIR   # a build (see that script)
    .venv/bin/python benchmarks/volume_spikes.py DIR [DIR ...]                     # then, about a minute each

A volume spike multiplies a feed's message count (about 4.5x for two hours). The detector scores residuals
in the series' own units against its last 750 residuals, so a surge at night (150 -> 700 messages a minute)
is no larger than the day's ordinary minute-to-minute noise (several hundred messages at about 3,700 a
minute). This script re-scores every feed's message count (``marts.fct_feed_status``) with the detector's
default settings from the build's first minute, three ways:

- ``raw``: the count as stored (what the warehouse scores);
- ``log``: ``log(1 + count)`` (a multiplicative move becomes an additive one);
- ``ratio``: ``(1 + count) / (1 + m)``, ``m`` the median of the same time of day (+- 5 steps) on the 3 days
  before (1 while there is no day before): the count against its own time of day, as a ratio.

For each volume spike of the labels: the highest score on the feed's count during the spike and whether a
0.99 was followed by another alarm (0.5) of the series within 30 minutes (the rule that confirms a lone
entity); and, per build, how often that happens outside every incident's window ([start - 30 min, end + 3 h))
per day, over all feeds: the false confirmations the count alone would add. A re-scoring of one metric, not
the episodes: nothing here changes what the warehouse stores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from cms_dagster.detect import score_series

SURE, ALARM = 0.99, 0.5
AGAIN = pd.Timedelta(minutes=30)
WAYS = ("raw", "log", "ratio")


def previous_days_ratio(values: np.ndarray, per_day: int, days: int = 3, half_width: int = 5) -> np.ndarray:
    """``(1 + x) / (1 + m)``: ``m`` the median of the points within ``half_width`` steps of the same time of
    day on the ``days`` days before (``per_day`` steps a day); 1 where there is no day before."""
    x = np.asarray(values, dtype=float)
    out = np.ones(len(x))
    for i in range(per_day, len(x)):
        near = [
            x[max(0, i - k * per_day - half_width) : i - k * per_day + half_width + 1]
            for k in range(1, days + 1)
            if i - k * per_day >= 0
        ]
        out[i] = (1.0 + x[i]) / (1.0 + float(np.median(np.concatenate(near))))
    return out


def transform(way: str, values: np.ndarray, per_day: int) -> np.ndarray:
    if way == "raw":
        return np.asarray(values, dtype=float)
    if way == "log":
        return np.log1p(np.asarray(values, dtype=float))
    return previous_days_ratio(values, per_day)


def confirmed_at(scores: pd.Series) -> list[pd.Timestamp]:
    """Times of a 0.99 that the same series follows with another alarm within 30 minutes."""
    out = []
    for t in scores.index[scores.to_numpy() >= SURE]:
        after = scores[(scores.index > t) & (scores.index <= t + AGAIN)]
        if (after >= ALARM).any():
            out.append(t)
    return out


def measure(home: Path) -> None:
    import duckdb

    labels = json.loads((home / "incidents-eval-labels.json").read_text())
    labels = labels if isinstance(labels, list) else labels["incidents"]

    def naive(s: str) -> pd.Timestamp:
        return pd.Timestamp(s).tz_convert("UTC").tz_localize(None)

    windows = [
        (naive(x["start"]) - pd.Timedelta(minutes=30), naive(x["end"]) + pd.Timedelta(hours=3))
        for x in labels
    ]
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    feeds = [
        r[0] for r in con.execute("select distinct feed_id from marts.fct_feed_status order by 1").fetchall()
    ]
    false = dict.fromkeys(WAYS, 0)
    lines = []
    span = None
    for feed in feeds:
        df = con.execute(
            "select minute_ts, messages from marts.fct_feed_status where feed_id = ? order by 1", [feed]
        ).df()
        ts = pd.to_datetime(df["minute_ts"])
        span = (ts.iloc[-1] - ts.iloc[0]).total_seconds() / 86_400
        step = float(np.median(np.diff(ts.to_numpy()).astype("timedelta64[s]").astype(float)))
        per_day = round(86_400 / step)
        spikes = [x for x in labels if x["kind"] == "volume_spike" and x["root_cause"] == f"feed:{feed}"]
        for way in WAYS:
            frame, _ = score_series(ts.to_numpy(), transform(way, df["messages"].to_numpy(), per_day))
            scores = pd.Series(frame.anomaly_score, index=ts)
            sure = confirmed_at(scores)
            false[way] += sum(not any(lo <= t < hi for lo, hi in windows) for t in sure)
            for x in spikes:
                start, end = naive(x["start"]), naive(x["end"])
                during = scores[(scores.index >= start) & (scores.index < end)]
                top = float(during.max()) if len(during) else 0.0
                held = any(start <= t < end for t in sure)
                lines.append((x.get("id", "?"), feed, f"{start:%Y-%m-%d %a %H:%M}", way, top, held))
    con.close()
    print(f"volume spikes in {home} ({span:.1f} days, {len(feeds)} feeds)")
    for inc, feed, start, way, top, held in lines:
        print(
            f"  {inc} feed:{feed} {start} {way:>5}: highest {top:.3f}, 0.99 and again: {'yes' if held else 'no'}"
        )
    print(
        "  0.99 and again outside every incident's window, per day: "
        + ", ".join(f"{way} {false[way] / max(span, 1e-9):.2f}" for way in WAYS)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("homes", type=Path, nargs="+", help="builds kept by benchmarks/incidents_eval.py --keep")
    args = p.parse_args(argv)
    for home in args.homes:
        if not (home / "warehouse.duckdb").exists() or not (home / "incidents-eval-labels.json").exists():
            print(
                f"{home} is not a kept incidents_eval build (no warehouse.duckdb or labels)", file=sys.stderr
            )
            return 2
    for home in args.homes:
        measure(home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
