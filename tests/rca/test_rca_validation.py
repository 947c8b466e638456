"""Bad input gets a clear error (a ValueError) that says what is wrong and where."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cms_dagster.rca import RcaInputError, rank, rank_incident

START = "2026-11-27T10:05:00Z"


def good() -> pd.DataFrame:
    times = pd.date_range("2026-11-27T10:00:00Z", periods=10, freq="min")
    frames = [
        pd.DataFrame({"time": times, "node": node, "metric": "latency", "value": np.arange(10.0) + i})
        for i, node in enumerate(["api", "db"])
    ]
    return pd.concat(frames, ignore_index=True)


def test_errors_are_value_errors() -> None:
    assert issubclass(RcaInputError, ValueError)


def test_missing_columns_are_named() -> None:
    with pytest.raises(RcaInputError, match=r"missing column\(s\) metric, value"):
        rank(good().drop(columns=["metric", "value"]), None, START)


def test_empty_metrics() -> None:
    with pytest.raises(RcaInputError, match="metrics are empty"):
        rank(good().iloc[0:0], None, START)


def test_not_a_dataframe() -> None:
    with pytest.raises(RcaInputError, match="must be a pandas DataFrame"):
        rank([("2026-11-27T10:00:00Z", "a", "m", 1.0)], None, START)  # type: ignore[arg-type]


def test_unparsable_times_name_the_rows() -> None:
    frame = good()
    frame["time"] = frame["time"].astype(str)
    frame.loc[3, "time"] = "yesterday"
    with pytest.raises(RcaInputError, match=r"unparsable times at row 3 \('yesterday'\)"):
        rank(frame, None, START)


def test_nan_values_name_the_rows() -> None:
    frame = good()
    frame.loc[[4, 12], "value"] = np.nan
    with pytest.raises(RcaInputError, match=r"NaN at rows 4, 12"):
        rank(frame, None, START)


def test_infinite_values_name_the_rows() -> None:
    frame = good()
    frame.loc[7, "value"] = np.inf
    with pytest.raises(RcaInputError, match=r"inf at row 7"):
        rank(frame, None, START)


def test_non_numeric_values() -> None:
    frame = good()
    frame["value"] = frame["value"].astype(object)
    frame.loc[2, "value"] = "fast"
    with pytest.raises(RcaInputError, match=r"not a number at row 2 \('fast'\)"):
        rank(frame, None, START)


def test_empty_node_names() -> None:
    frame = good()
    frame.loc[5, "node"] = " "
    with pytest.raises(RcaInputError, match=r"column 'node' is empty at row 5"):
        rank(frame, None, START)


def test_duplicate_times_name_the_series() -> None:
    frame = pd.concat([good(), good().iloc[[13]]], ignore_index=True)
    with pytest.raises(
        RcaInputError, match=r"duplicate rows for series node='db' metric='latency'.*rows 13, 20"
    ):
        rank(frame, None, START)


def test_unsorted_times_name_the_series() -> None:
    frame = good()
    frame.loc[[2, 3], "time"] = frame.loc[[3, 2], "time"].to_numpy()
    with pytest.raises(RcaInputError, match=r"times go backwards within series node='api' metric='latency'"):
        rank(frame, None, START)


def test_start_before_the_data_or_after_it() -> None:
    with pytest.raises(RcaInputError, match="no history"):
        rank(good(), None, "2026-11-27T09:00:00Z")
    with pytest.raises(RcaInputError, match="after the last data point"):
        rank(good(), None, "2026-11-28T00:00:00Z")


def test_start_that_is_not_a_time() -> None:
    with pytest.raises(RcaInputError, match="start time 'soon' is not a time"):
        rank(good(), None, "soon")


def test_end_before_start() -> None:
    with pytest.raises(RcaInputError, match="before start"):
        rank(good(), None, START, end="2026-11-27T10:01:00Z")


def test_bad_baseline_duration() -> None:
    with pytest.raises(RcaInputError, match="baseline 'a while' is not a duration"):
        rank(good(), None, START, baseline="a while")


def test_graph_missing_columns() -> None:
    with pytest.raises(RcaInputError, match=r"graph is missing column\(s\) target"):
        rank(good(), pd.DataFrame({"source": ["api"], "to": ["db"]}), START)


def test_graph_edge_that_is_not_a_pair() -> None:
    with pytest.raises(RcaInputError, match="graph edge 0"):
        rank(good(), [("api", "db", "extra")], START)


def test_unknown_target() -> None:
    with pytest.raises(RcaInputError, match="target 'web' is neither in the metrics nor in the graph"):
        rank(good(), [("api", "db")], START, target="web")


def test_domain_ranking_checks_the_same_way() -> None:
    frame = good().rename(columns={"node": "entity"})
    frame.loc[1, "value"] = np.nan
    with pytest.raises(RcaInputError, match="NaN at row 1"):
        rank_incident(frame, [], START)
    with pytest.raises(RcaInputError, match=r"missing column\(s\) entity"):
        rank_incident(good().rename(columns={"node": "host"}), [], START)
