"""Scoring many series at once, as the warehouse asset does per partition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cms_dagster.detect import DetectInputError, score_long_frame, score_many, score_series

TS = pd.date_range("2026-11-20", periods=900, freq="1min")


def series(seed: int) -> np.ndarray:
    return 50 + np.random.default_rng(seed).normal(0, 2, len(TS))


def test_score_many_equals_scoring_each_series_alone() -> None:
    data = {f"rds:db-{i}": (TS, series(i)) for i in range(3)}
    batch = score_many(data)
    assert set(batch.frames) == set(data)
    for key, (ts, v) in data.items():
        alone, state = score_series(ts, v)
        assert np.array_equal(batch.frames[key].anomaly_score, alone.anomaly_score)
        assert batch.states[key].to_json() == state.to_json()


def test_score_many_continues_from_checkpoints_like_one_run() -> None:
    data = {k: series(i) for i, k in enumerate(["a", "b"])}
    one_run = score_many({k: (TS, v) for k, v in data.items()})
    first = score_many({k: (TS[:500], v[:500]) for k, v in data.items()})
    checkpoints = {k: s.to_json() for k, s in first.states.items()}
    second = score_many({k: (TS[500:], v[500:]) for k, v in data.items()}, states=checkpoints)
    for k in data:
        joined = np.concatenate([first.frames[k].anomaly_score, second.frames[k].anomaly_score])
        assert np.array_equal(joined, one_run.frames[k].anomaly_score)


def test_bad_series_is_collected_without_stopping_the_others() -> None:
    bad = series(1)
    bad[10] = np.nan
    batch = score_many([("good", TS, series(0)), ("bad", TS, bad)], on_error="collect")
    assert list(batch.frames) == ["good"]
    assert "row 10" in batch.errors["bad"]
    with pytest.raises(DetectInputError, match=r"series 'bad': row 10"):
        score_many([("bad", TS, bad)])


def test_anomalies_table_has_the_agreed_columns() -> None:
    v = series(0)
    v[800] += 40
    batch = score_many({"lambda:fx-rate-normalizer": (TS, v)})
    table = batch.anomalies(min_score=0.5)
    assert list(table.columns) == ["series", "time", "score", "kind", "baseline", "observed"]
    row = table.iloc[0]
    assert row["series"] == "lambda:fx-rate-normalizer"
    assert row["time"] == TS[800]
    assert row["kind"] == "spike"
    assert row["observed"] == v[800]
    assert batch.anomalies(min_score=1.1).empty


def test_long_table_is_grouped_sorted_and_scored_per_series() -> None:
    rows = []
    for entity in ("sqs:trade-events", "sqs:orders"):
        for t, x in zip(TS[:300], series(len(entity))[:300], strict=True):
            rows.append({"entity_id": entity, "metric_name": "depth", "ts": t, "value": x})
    df = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # arrives unordered
    batch = score_long_frame(df, ["entity_id", "metric_name"], "ts", "value")
    assert set(batch.frames) == {("sqs:orders", "depth"), ("sqs:trade-events", "depth")}
    assert all(len(f) == 300 for f in batch.frames.values())
    with pytest.raises(DetectInputError, match="lacks column"):
        score_long_frame(df, ["entity"], "ts", "value")


@pytest.mark.slow  # starts two Python processes
def test_long_table_scored_in_two_processes_equals_one() -> None:
    rows = []
    for i in range(5):  # series of different lengths, one with a bad row, two continuing from checkpoints
        n = 300 + 100 * i
        v = series(i)[:n]
        if i == 3:
            v[40] = np.nan
        rows.append(pd.DataFrame({"series": f"s{i}", "ts": TS[:n], "value": v}))
    df = pd.concat(rows).sample(frac=1.0, random_state=1)
    head = score_many({"s0": (TS[:100], series(0)[:100] - 1), "s4": (TS[:50], series(4)[:50])})
    later = df[~df["series"].isin(["s0", "s4"]) | (df["ts"] >= TS[100])]
    states = {"s0": head.states["s0"], "s4": head.states["s4"].to_json(), "s3": head.states["s0"]}
    one = score_long_frame(later, ["series"], "ts", "value", states=states)
    two = score_long_frame(later, ["series"], "ts", "value", states=states, workers=2)
    assert list(two.frames) == list(one.frames) and list(two.states) == list(one.states)
    assert two.errors == one.errors and "row" in two.errors["s3"]
    for key in one.frames:
        a, b = one.frames[key], two.frames[key]
        for col in ("timestamp", "observed", "anomaly_score", "kind", "baseline"):
            assert np.array_equal(getattr(a, col), getattr(b, col)), (key, col)
        assert one.states[key].to_json() == two.states[key].to_json()
    assert two.states["s3"].to_json() == head.states["s0"].to_json()  # an errored series keeps its state
    pd.testing.assert_frame_equal(one.anomalies(), two.anomalies())
