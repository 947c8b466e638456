"""Bad input gets an error that says what is wrong, where, and what to do."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cms_dagster.detect import (
    DetectInputError,
    DuplicateTimestampError,
    NonFiniteValueError,
    TimestampParseError,
    UnsortedTimestampsError,
    score_series,
)

TS = ["2026-11-20 14:00:00", "2026-11-20 14:05:00", "2026-11-20 14:10:00", "2026-11-20 14:15:00"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_value_names_its_row(bad: float) -> None:
    with pytest.raises(NonFiniteValueError, match=r"row 2: value is .* not a finite number; drop the point"):
        score_series(TS, [1.0, 2.0, bad, 3.0])


def test_text_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(NonFiniteValueError, match=r"row 1: value is 'abc'"):
        score_series(TS, ["1", "abc", "2", "3"])


def test_unparsable_timestamp_names_its_row_and_the_format() -> None:
    with pytest.raises(TimestampParseError, match=r"row 3: cannot parse timestamp 'yesterday'.*ISO-8601"):
        score_series([*TS[:3], "yesterday"], [1, 2, 3, 4])


def test_numeric_timestamps_are_refused() -> None:
    with pytest.raises(TimestampParseError, match="timestamps are numbers"):
        score_series([1, 2, 3], [1, 2, 3])


def test_unsorted_timestamps_say_sort_first() -> None:
    with pytest.raises(UnsortedTimestampsError, match=r"row 2: .* is before the previous row's .* sort the points"):
        score_series([TS[0], TS[2], TS[1], TS[3]], [1, 2, 3, 4])


def test_a_late_row_is_scored_as_a_repeat_of_the_latest_time() -> None:
    values = [10.0, 11.0, 50.0, 10.5]
    late, _ = score_series([TS[0], TS[2], TS[1], TS[3]], values, allow_late=True)
    repeat, _ = score_series([TS[0], TS[2], TS[2], TS[3]], values, allow_duplicates=True)
    assert list(late.timestamp) == list(repeat.timestamp)  # the late row sits at 14:10, the latest time seen
    np.testing.assert_array_equal(late.anomaly_score, repeat.anomaly_score)


def test_a_late_row_does_not_excuse_a_repeat_of_the_latest_time() -> None:
    # 14:10 again after the late 14:05 repeats the latest time: a duplicate, named by its own row
    with pytest.raises(DuplicateTimestampError, match=r"row 3: time .* repeats the previous row"):
        score_series([TS[0], TS[2], TS[1], TS[2]], [1, 2, 3, 4], allow_late=True)


def test_a_row_older_than_the_checkpoint_is_late_too() -> None:
    _, state = score_series(TS[:3], [1, 2, 3])
    frame, after = score_series([TS[1], TS[3]], [2, 4], state=state, allow_late=True)
    assert len(frame) == 2 and after.last_timestamp == pd.Timestamp(TS[3])


def test_duplicate_timestamps_say_deduplicate_or_allow() -> None:
    with pytest.raises(DuplicateTimestampError, match=r"row 2: time .* repeats the previous row.*--duplicates keep"):
        score_series([TS[0], TS[1], TS[1], TS[2]], [1, 2, 3, 4])
    frame, _ = score_series([TS[0], TS[1], TS[1], TS[2]], [1, 2, 3, 4], allow_duplicates=True)
    assert len(frame) == 4


def test_length_mismatch_is_an_input_error() -> None:
    with pytest.raises(DetectInputError, match="4 timestamps but 3 values"):
        score_series(TS, [1, 2, 3])


def test_errors_are_value_errors() -> None:
    assert issubclass(NonFiniteValueError, ValueError)


def test_timezones_are_converted_to_utc() -> None:
    aware = pd.date_range("2026-11-20 15:00", periods=4, freq="5min", tz="Europe/Paris")
    frame, _ = score_series(aware, [1, 2, 3, 4])
    assert frame.timestamp[0] == np.datetime64("2026-11-20T14:00:00")
    frame2, _ = score_series(["2026-11-20T14:00:00Z", "2026-11-20T15:05:00+01:00"], [1, 2])
    assert list(frame2.timestamp) == [np.datetime64("2026-11-20T14:00:00"), np.datetime64("2026-11-20T14:05:00")]


def test_empty_input_scores_nothing() -> None:
    frame, state = score_series([], [])
    assert len(frame) == 0 and state.points_seen == 0


def test_missing_time_in_datetime_array_is_named() -> None:
    ts = np.array(["2026-11-20T14:00", "NaT"], dtype="datetime64[ns]")
    with pytest.raises(TimestampParseError, match=r"row 1: the timestamp is missing"):
        score_series(ts, [1, 2])
