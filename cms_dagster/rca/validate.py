"""Input checks for root-cause ranking: clear errors for bad metrics, graphs and times.

Every problem raises :class:`RcaInputError` (a ``ValueError``) that says what was wrong, where (which
column, rows or series) and what to do. Non-fatal oddities (a graph edge naming a node without metrics, a
series without history) are reported with :class:`RcaWarning`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cms_dagster.rca.findings import iso_time

__all__ = [
    "PreparedMetrics",
    "RcaInputError",
    "RcaWarning",
    "check_window",
    "parse_duration",
    "parse_time",
    "prepare_edges",
    "prepare_metrics",
    "resolve_tolerance",
    "sampling_step",
]

_SHOW = 5  # how many offending rows an error lists


class RcaInputError(ValueError):
    """The metrics, the graph or a time given to the ranking is unusable; the message says how to fix it."""


class RcaWarning(UserWarning):
    """Something odd but not fatal in the ranking's input (e.g. a graph node without metrics)."""


@dataclass(frozen=True)
class PreparedMetrics:
    """Validated metrics as flat arrays, rows ordered by series then time.

    ``series`` indexes ``series_node`` / ``series_metric``; ``starts[i]:starts[i+1]`` are the rows of series i.
    """

    time: np.ndarray  # int64 ns since epoch, UTC
    value: np.ndarray  # float64, finite
    series: np.ndarray  # int64 series index per row
    series_node: np.ndarray  # object array of node names per series
    series_metric: np.ndarray  # object array of metric names per series
    starts: np.ndarray  # int64, len = n_series + 1


def _rows(labels: Sequence[object], what: str = "row") -> str:
    labels = list(labels)
    shown = ", ".join(str(x) for x in labels[:_SHOW])
    more = f" and {len(labels) - _SHOW} more" if len(labels) > _SHOW else ""
    plural = "s" if len(labels) > 1 else ""
    return f"{what}{plural} {shown}{more}"


def _to_ns(values: pd.Series, *, column: str, where: str) -> np.ndarray:
    """Times as int64 ns UTC. Strings are parsed (ISO-8601 recommended); numbers are epoch seconds."""
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values.dtype):
        parsed = pd.to_datetime(values, utc=True)
    elif pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        numbers = values.astype("float64")
        bad = ~np.isfinite(numbers.to_numpy())
        if bad.any():
            raise RcaInputError(
                f"column {column!r} has missing or non-finite times at {_rows(values.index[bad], where)}: "
                "give every row a time (ISO-8601 such as 2026-11-27T10:00:00Z, or epoch seconds)"
            )
        parsed = pd.to_datetime(numbers, unit="s", utc=True)
    else:
        text = values.astype("object")
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        bad = parsed.isna().to_numpy()
        if bad.any():
            # a second chance for non-ISO but consistent formats (e.g. "11/27/2026 10:00")
            retry = pd.to_datetime(text, utc=True, errors="coerce")
            if not retry.isna().any():
                parsed, bad = retry, np.zeros(len(values), dtype=bool)
        if bad.any():
            examples = ", ".join(repr(v) for v in text[bad].head(3))
            raise RcaInputError(
                f"column {column!r} has unparsable times at {_rows(values.index[bad], where)} ({examples}): "
                "write times as ISO-8601, e.g. 2026-11-27T10:00:00Z"
            )
    out = parsed.to_numpy(dtype="datetime64[ns]").astype("int64")
    return out


def parse_time(value: object, *, name: str = "start") -> pd.Timestamp:
    """One time (ISO-8601 string, datetime, Timestamp or epoch seconds) as a UTC Timestamp."""
    try:
        if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
            if not np.isfinite(value):
                raise ValueError("not finite")
            ts = pd.Timestamp(float(value), unit="s")
        else:
            ts = pd.Timestamp(value)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise RcaInputError(
            f"{name} time {value!r} is not a time: write ISO-8601, e.g. 2026-11-27T10:00:00Z ({exc})"
        ) from None
    if ts is pd.NaT or pd.isna(ts):
        raise RcaInputError(f"{name} time {value!r} is not a time: write ISO-8601, e.g. 2026-11-27T10:00:00Z")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def prepare_metrics(
    metrics: pd.DataFrame,
    *,
    node_column: str = "node",
    where: str = "row",
) -> PreparedMetrics:
    """Check long-format metrics (time, <node_column>, metric, value) and return them as sorted arrays.

    Raises RcaInputError for: not a DataFrame, no rows, missing columns, unparsable or missing times,
    empty node or metric names, non-numeric/NaN/inf values, duplicate (time, node, metric) rows, and times
    that go backwards within a series. ``where`` names the row labels in messages (the CLI uses "line").
    """
    if not isinstance(metrics, pd.DataFrame):
        raise RcaInputError(
            f"metrics must be a pandas DataFrame with columns time, {node_column}, metric, value; "
            f"got {type(metrics).__name__}"
        )
    required = ["time", node_column, "metric", "value"]
    missing = [c for c in required if c not in metrics.columns]
    if missing:
        raise RcaInputError(
            f"metrics are missing column(s) {', '.join(missing)}; expected long format with columns "
            f"{', '.join(required)} (found: {', '.join(map(str, metrics.columns)) or 'none'})"
        )
    if len(metrics) == 0:
        raise RcaInputError(
            "metrics are empty: give each series' normal history followed by the incident "
            f"(columns {', '.join(required)})"
        )

    index = metrics.index
    time_ns = _to_ns(metrics["time"], column="time", where=where)

    codes: dict[str, np.ndarray] = {}
    uniques: dict[str, np.ndarray] = {}
    for col in (node_column, "metric"):
        # factorize first, then check the (few) distinct names: fast even for millions of rows
        c, u = pd.factorize(metrics[col], use_na_sentinel=True)
        u = np.asarray([str(x).strip() for x in u], dtype=object)
        bad = c < 0
        blank = np.flatnonzero(u == "")
        if len(blank):
            bad |= np.isin(c, blank)
        if bad.any():
            raise RcaInputError(
                f"column {col!r} is empty at {_rows(index[bad], where)}: every row needs a {col} name"
            )
        # names that differ only by surrounding spaces are the same name
        u_clean, remap = np.unique(u, return_inverse=True)
        codes[col], uniques[col] = remap[c].astype(np.int64), u_clean

    raw_value = metrics["value"]
    if pd.api.types.is_bool_dtype(raw_value.dtype):
        value = raw_value.astype("float64").to_numpy()
    elif pd.api.types.is_numeric_dtype(raw_value.dtype):
        value = raw_value.to_numpy(dtype="float64", na_value=np.nan)
    else:
        coerced = pd.to_numeric(raw_value, errors="coerce")
        not_number = (coerced.isna() & raw_value.notna()).to_numpy()
        if not_number.any():
            examples = ", ".join(repr(v) for v in raw_value[not_number].head(3))
            raise RcaInputError(
                f"column 'value' is not a number at {_rows(index[not_number], where)} ({examples}): "
                "values must be plain numbers"
            )
        value = coerced.to_numpy(dtype="float64", na_value=np.nan)
    bad = ~np.isfinite(value)
    if bad.any():
        kinds = sorted({"NaN" if np.isnan(v) else "inf" for v in value[bad][:1000]})
        raise RcaInputError(
            f"column 'value' has {'/'.join(kinds)} at {_rows(index[bad], where)}: drop those rows or fill "
            "them before ranking (a missing point is better left out than written as NaN)"
        )

    node_codes, node_uniques = codes[node_column], uniques[node_column]
    metric_codes, metric_uniques = codes["metric"], uniques["metric"]
    key = node_codes.astype(np.int64) * len(metric_uniques) + metric_codes
    series, key_uniques = pd.factorize(key, sort=True)
    series = series.astype(np.int64)
    order = np.argsort(series, kind="stable")
    s_sorted = series[order]
    t_sorted = time_ns[order]
    same = s_sorted[1:] == s_sorted[:-1]
    step = np.diff(t_sorted)
    series_node = np.asarray(node_uniques, dtype=object)[key_uniques // len(metric_uniques)]
    series_metric = np.asarray(metric_uniques, dtype=object)[key_uniques % len(metric_uniques)]

    def _series_name(i: int) -> str:
        return f"{node_column}={series_node[i]!r} metric={series_metric[i]!r}"

    back = same & (step < 0)
    if back.any():
        # times go backwards somewhere: look for duplicates over the fully sorted rows first (they need a
        # different fix), then report the order
        by_time = np.lexsort((time_ns, series))
        dup_sorted = (series[by_time][1:] == series[by_time][:-1]) & (np.diff(time_ns[by_time]) == 0)
        if dup_sorted.any():
            _raise_duplicates(
                dup_sorted,
                by_time,
                series[by_time],
                time_ns[by_time],
                index,
                where,
                _series_name,
                node_column,
            )
    dup = same & (step == 0)
    if dup.any():
        _raise_duplicates(dup, order, s_sorted, t_sorted, index, where, _series_name, node_column)
    if back.any():
        at = np.flatnonzero(back)
        bad_series = sorted({int(s_sorted[i]) for i in at})
        first = at[0]
        rows = index[order[[first, first + 1]]]
        names_shown = "; ".join(_series_name(s) for s in bad_series[:3])
        more = f" and {len(bad_series) - 3} more" if len(bad_series) > 3 else ""
        raise RcaInputError(
            f"times go backwards within series {names_shown}{more} (first at {_rows(rows, where)}): sort the "
            f"metrics by time within each series (e.g. df.sort_values(['{node_column}', 'metric', 'time']))"
        )

    counts = np.bincount(s_sorted, minlength=len(key_uniques))
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return PreparedMetrics(
        time=t_sorted,
        value=value[order],
        series=s_sorted,
        series_node=series_node,
        series_metric=series_metric,
        starts=starts,
    )


def _raise_duplicates(
    dup: np.ndarray,
    order: np.ndarray,
    s_sorted: np.ndarray,
    t_sorted: np.ndarray,
    index: pd.Index,
    where: str,
    series_name: Callable[[int], str],
    node_column: str,
) -> None:
    at = np.flatnonzero(dup)
    first = at[0]
    rows = sorted(index[order[[first, first + 1]]])
    when = pd.Timestamp(t_sorted[first], tz="UTC").isoformat()
    raise RcaInputError(
        f"duplicate rows for series {series_name(int(s_sorted[first]))} at time {when} ({_rows(rows, where)}); "
        f"{len(at)} duplicate (time, {node_column}, metric) row(s) in all: keep one value per series and time "
        "(aggregate them first)"
    )


def prepare_edges(graph: pd.DataFrame | Iterable[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """Edges as (source, target) string pairs, "source depends on target". None means no graph.

    Accepts a DataFrame with columns source, target or any iterable of pairs. Self-loops and repeats are
    dropped; empty names raise RcaInputError.
    """
    if graph is None:
        return []
    if isinstance(graph, pd.DataFrame):
        missing = [c for c in ("source", "target") if c not in graph.columns]
        if missing:
            raise RcaInputError(
                f"graph is missing column(s) {', '.join(missing)}; expected columns source,target where each "
                f"row means 'source depends on target' (found: {', '.join(map(str, graph.columns)) or 'none'})"
            )
        bad = graph["source"].isna().to_numpy() | graph["target"].isna().to_numpy()
        if bad.any():
            raise RcaInputError(f"graph has an empty source or target at {_rows(graph.index[bad])}")
        pairs = list(zip(graph["source"].astype(str), graph["target"].astype(str), strict=True))
    else:
        pairs = []
        for i, pair in enumerate(graph):
            try:
                source, target = pair
            except (TypeError, ValueError):
                raise RcaInputError(
                    f"graph edge {i} is {pair!r}: give each edge as a (source, target) pair"
                ) from None
            pairs.append((source, target))
    out: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    loops = 0
    for i, (source, target) in enumerate(pairs):
        if source is None or target is None or str(source).strip() == "" or str(target).strip() == "":
            raise RcaInputError(f"graph edge {i} ({source!r} -> {target!r}) has an empty node name")
        edge = (str(source).strip(), str(target).strip())
        if edge[0] == edge[1]:
            loops += 1
            continue
        if edge not in seen:
            seen.add(edge)
            out.append(edge)
    if loops:
        warnings.warn(f"graph: ignored {loops} self-loop edge(s)", RcaWarning, stacklevel=3)
    return out


def check_window(
    prepared_time: np.ndarray, start: pd.Timestamp, end: pd.Timestamp | None
) -> tuple[int, int | None]:
    """Start (and end) as ns, checked against the data: history must exist before start and data after it."""
    start_ns = int(start.value)
    t_min, t_max = int(prepared_time.min()), int(prepared_time.max())
    span = f"the data run from {iso_time(pd.Timestamp(t_min, tz='UTC'))} to {iso_time(pd.Timestamp(t_max, tz='UTC'))}"
    if start_ns <= t_min:
        raise RcaInputError(
            f"start {iso_time(start)} is at or before the first data point: there is no history to learn the "
            f"baseline from ({span}); give a start inside the data"
        )
    if start_ns > t_max:
        raise RcaInputError(
            f"start {iso_time(start)} is after the last data point: there is no incident to rank ({span})"
        )
    end_ns = None
    if end is not None:
        end_ns = int(end.value)
        if end_ns < start_ns:
            raise RcaInputError(f"end {iso_time(end)} is before start {iso_time(start)}")
    return start_ns, end_ns


def parse_duration(value: pd.Timedelta | str | None, *, name: str) -> int | None:
    """A duration such as "6h" or "30min" as ns (None stays None); RcaInputError when unreadable or negative."""
    if value is None:
        return None
    try:
        ns = int(pd.Timedelta(value).value)
    except (ValueError, TypeError):
        raise RcaInputError(f"{name} {value!r} is not a duration: write e.g. 6h, 30min or 2d") from None
    if ns < 0:
        raise RcaInputError(f"{name} {value!r} is negative: give a positive duration")
    return ns


def resolve_tolerance(tolerance: pd.Timedelta | str | None, step: pd.Timedelta) -> pd.Timedelta:
    """The given onset tolerance, or two sampling steps (onsets are only known to a step or two)."""
    if tolerance is None:
        return 2 * step
    return pd.Timedelta(parse_duration(tolerance, name="onset tolerance"), unit="ns")


def sampling_step(time_ns: np.ndarray, series: np.ndarray) -> pd.Timedelta:
    """The data's typical sampling step: the median spacing of consecutive points of a series."""
    same = series[1:] == series[:-1]
    steps = np.diff(time_ns)[same]
    return pd.Timedelta(int(np.median(steps)), unit="ns") if len(steps) else pd.Timedelta(0)
