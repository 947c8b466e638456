"""Checking and normalizing detector input: timestamps to UTC nanoseconds, values to finite floats."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .errors import (
    DetectInputError,
    DuplicateTimestampError,
    MissingColumnError,
    NonFiniteValueError,
    TimestampParseError,
    UnsortedTimestampsError,
)

REQUIRED_COLUMNS = ("timestamp", "value")


def _where(i: int, row_offset: int, row_label: str) -> str:
    """Name a row for a message: ``row 5`` (0-based position + offset, e.g. the CSV line)."""
    return f"{row_label} {i + row_offset}"


def to_utc_ns(timestamps: Any, *, row_offset: int = 0, row_label: str = "row") -> np.ndarray:
    """Timestamps (ISO-8601 strings, datetimes, ``datetime64``) as int64 UTC nanoseconds.

    Naive timestamps are taken as UTC; aware ones are converted to UTC. Raises
    :class:`TimestampParseError` naming the first row that cannot be parsed.
    """
    if isinstance(timestamps, np.ndarray) and np.issubdtype(timestamps.dtype, np.datetime64):
        arr = timestamps.astype("datetime64[ns]")
        bad = np.isnat(arr)
        if bad.any():
            i = int(np.argmax(bad))
            raise TimestampParseError(
                f"{_where(i, row_offset, row_label)}: the timestamp is missing (NaT); give every point a time"
            )
        return arr.astype(np.int64)
    if isinstance(timestamps, (pd.Series, pd.DatetimeIndex)) and pd.api.types.is_datetime64_any_dtype(
        timestamps
    ):
        idx = pd.DatetimeIndex(timestamps)
        if idx.tz is not None:
            idx = idx.tz_convert("UTC").tz_localize(None)
        return to_utc_ns(idx.to_numpy(dtype="datetime64[ns]"), row_offset=row_offset, row_label=row_label)
    seq = timestamps if isinstance(timestamps, pd.Series) else pd.Series(list(timestamps), dtype=object)
    if len(seq) and pd.api.types.infer_dtype(seq, skipna=True) in (
        "integer",
        "floating",
        "mixed-integer-float",
    ):
        raise TimestampParseError(
            "timestamps are numbers; give ISO-8601 times such as 2026-11-20 14:05:00 (UTC when no zone)"
        )
    parsed = pd.to_datetime(seq, errors="coerce", utc=True, format="ISO8601")
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raw = seq.iloc[i]
        raise TimestampParseError(
            f"{_where(i, row_offset, row_label)}: cannot parse timestamp {raw!r}; "
            "use ISO-8601 such as 2026-11-20 14:05:00 or 2026-11-20T14:05:00Z"
        )
    return parsed.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").astype(np.int64)


def to_finite_floats(values: Any, *, row_offset: int = 0, row_label: str = "row") -> np.ndarray:
    """Values as float64; raises :class:`NonFiniteValueError` naming the first NaN, inf or non-number."""
    seq = (
        values
        if isinstance(values, pd.Series)
        else pd.Series(values if isinstance(values, np.ndarray) else list(values))
    )
    num = pd.to_numeric(seq, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(num)
    if bad.any():
        i = int(np.argmax(bad))
        raw = seq.iloc[i]
        what = "empty" if raw is None or (isinstance(raw, str) and not raw.strip()) else repr(raw)
        raise NonFiniteValueError(
            f"{_where(i, row_offset, row_label)}: value is {what}, not a finite number; "
            "drop the point or fill it before scoring (the detector never guesses missing values)"
        )
    return num


def check_order(
    ts_ns: np.ndarray,
    *,
    after_ns: int | None = None,
    allow_duplicates: bool = False,
    row_offset: int = 0,
    row_label: str = "row",
    rows: np.ndarray | None = None,
) -> None:
    """Timestamps must strictly increase, and come after ``after_ns`` (the checkpoint's last point).

    With ``allow_duplicates`` equal neighbours pass (each row is then scored as its own point). ``rows``: the
    input row of each timestamp, when they are a selection (for the messages).
    """

    def at(i: int) -> str:
        return _where(int(rows[i]) if rows is not None else i, row_offset, row_label)

    if len(ts_ns) == 0:
        return
    first = int(ts_ns[0])
    if after_ns is not None and (first < after_ns or (first == after_ns and not allow_duplicates)):
        last = pd.Timestamp(after_ns, unit="ns")
        first = pd.Timestamp(int(ts_ns[0]), unit="ns")
        raise UnsortedTimestampsError(
            f"{at(0)}: time {first} is not after the checkpoint's last point ({last}); "
            "score only points newer than the checkpoint, or start from the checkpoint taken before them "
            "(a back-fill re-runs the partitions after it in order)"
        )
    d = np.diff(ts_ns)
    bad = d < 0 if allow_duplicates else d <= 0
    if not bad.any():
        return
    i = int(np.argmax(bad)) + 1
    here = pd.Timestamp(int(ts_ns[i]), unit="ns")
    before = pd.Timestamp(int(ts_ns[i - 1]), unit="ns")
    if d[i - 1] == 0:
        raise DuplicateTimestampError(
            f"{at(i)}: time {here} repeats the previous row; "
            "keep one point per time (aggregate or de-duplicate first), or allow duplicates explicitly "
            "(CLI: --duplicates keep) to score every row as its own point"
        )
    raise UnsortedTimestampsError(
        f"{at(i)}: time {here} is before the previous row's {before}; "
        "sort the points by time first, or score late rows in arrival order (allow_late; CLI: --late score)"
    )


def check_columns(columns: Sequence[str], source: str = "input") -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise MissingColumnError(
            f"{source} lacks column(s) {', '.join(missing)} (it has: {', '.join(map(str, columns)) or 'none'}); "
            "give a header row with timestamp,value (the NAB format)"
        )


def prepare(
    timestamps: Any,
    values: Any,
    *,
    after_ns: int | None = None,
    allow_duplicates: bool = False,
    allow_late: bool = False,
    row_offset: int = 0,
    row_label: str = "row",
) -> tuple[np.ndarray, np.ndarray]:
    """Validate one series: returns ``(ts_ns int64, values float64)`` or raises a :class:`DetectInputError`.

    With ``allow_late`` a row whose time is before a row already seen (or before the checkpoint's last point)
    is not an error: it is scored in arrival order, at the latest time seen so far (the returned times are
    those times), as a repeat of that time would be. Repeats of the previous row's own time still need
    ``allow_duplicates``.
    """
    ts = to_utc_ns(timestamps, row_offset=row_offset, row_label=row_label)
    vals = to_finite_floats(values, row_offset=row_offset, row_label=row_label)
    if len(ts) != len(vals):
        raise DetectInputError(f"{len(ts)} timestamps but {len(vals)} values; give one value per timestamp")
    if allow_late and len(ts):
        seen = np.maximum.accumulate(ts)
        if after_ns is not None:
            seen = np.maximum(seen, after_ns)
        previous = np.concatenate([[after_ns if after_ns is not None else ts[0] - 1], seen[:-1]])
        late = ts < previous
        on_time = ~late
        # repeats among the rows that came in order are judged as before; late rows move to the latest time
        check_order(
            ts[on_time],
            after_ns=after_ns,
            allow_duplicates=allow_duplicates,
            row_offset=row_offset,
            row_label=row_label,
            rows=np.flatnonzero(on_time),
        )
        return seen, vals
    check_order(
        ts, after_ns=after_ns, allow_duplicates=allow_duplicates, row_offset=row_offset, row_label=row_label
    )
    return ts, vals
