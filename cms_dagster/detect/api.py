"""Public API: score one series or many, carrying detector state (checkpoints) across partitions.

Typical partitioned use (what the Dagster asset does each hour)::

    states = {key: load_checkpoint(key) for key in keys}          # bytes from the lake, or None
    batch = score_many(new_points_by_key, states=states)          # only the partition's new points
    anomalies = batch.anomalies()                                  # long table for the warehouse
    for key, state in batch.states.items():
        save_checkpoint(key, state.to_json())

Scoring the same points in one pass or in consecutive chunks (each chunk starting from the previous
chunk's checkpoint) gives identical results; a score never depends on later points.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from .config import DetectorConfig
from .detector import STATE_VERSION, StreamingDetector
from .errors import CheckpointError, DetectInputError
from .validation import prepare

ANOMALY_COLUMNS = ("series", "time", "score", "kind", "baseline", "observed")


class DetectorState:
    """Everything the detector remembers about one series; ``to_json()`` is the checkpoint."""

    def __init__(self, detector: StreamingDetector) -> None:
        self._det = detector

    @classmethod
    def new(cls, config: DetectorConfig | None = None) -> DetectorState:
        return cls(StreamingDetector(config))

    @property
    def config(self) -> DetectorConfig:
        return self._det.config

    @property
    def points_seen(self) -> int:
        return self._det.n

    @property
    def last_timestamp(self) -> pd.Timestamp | None:
        """Time of the last point scored (UTC, naive), or None for a fresh state."""
        ts = self._det.last_ts
        return None if ts is None else pd.Timestamp(ts, unit="ns")

    @property
    def sampling_period(self) -> pd.Timedelta | None:
        """The inferred sampling period, once enough points were seen."""
        step = self._det.step_ns
        return None if step is None else pd.Timedelta(step, unit="ns")

    def to_json(self) -> bytes:
        body = self._det.to_dict()
        body["settings"] = self._det.config.to_dict()
        # orjson writes floats in shortest round-trip form (restored bit for bit) and is ~10x faster than json
        return orjson.dumps(body)

    @classmethod
    def from_json(cls, data: bytes | str, config: DetectorConfig | None = None) -> DetectorState:
        """Restore a checkpoint. With ``config``, it must be the configuration the checkpoint was made with."""
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise CheckpointError(
                f"checkpoint is not valid JSON ({exc}); pass the bytes of to_json()"
            ) from exc
        if not isinstance(body, dict) or body.get("version") != STATE_VERSION:
            found = body.get("version") if isinstance(body, dict) else None
            raise CheckpointError(
                f"checkpoint version {found!r} is not {STATE_VERSION}; re-score the series from its start "
                "(or from an older checkpoint made by this version)"
            )
        saved = DetectorConfig.from_dict(body["settings"])
        if config is not None and config.fingerprint() != saved.fingerprint():
            raise CheckpointError(
                "checkpoint was made with other detector settings; restore it with its own settings "
                "(config=None) or re-score the series from its start with the new ones"
            )
        try:
            det = StreamingDetector.from_dict(body, saved)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"checkpoint is damaged ({exc!r}); re-score the series from its start"
            ) from exc
        return cls(det)

    def copy(self) -> DetectorState:
        return DetectorState.from_json(self.to_json())


@dataclass
class ScoredFrame:
    """Scored points of one series, aligned arrays."""

    timestamp: np.ndarray  # datetime64[ns], UTC
    observed: np.ndarray  # float64, the input value
    anomaly_score: np.ndarray  # float64 in [0, 1)
    kind: np.ndarray  # object: spike, dip, level_shift, drift or none
    baseline: np.ndarray  # float64, the expected value

    def __len__(self) -> int:
        return len(self.timestamp)

    def to_pandas(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "timestamp": self.timestamp,
                "value": self.observed,
                "anomaly_score": self.anomaly_score,
                "kind": self.kind,
                "baseline": self.baseline,
            }
        )

    def records(self) -> list[dict[str, Any]]:
        return self.to_pandas().to_dict("records")


def _as_state(state: DetectorState | bytes | str | None, config: DetectorConfig | None) -> StreamingDetector:
    if state is None:
        return StreamingDetector(config)
    if isinstance(state, DetectorState):
        # never mutate the caller's state: continue from a restored copy (also proves it round-trips)
        if config is not None and config.fingerprint() != state.config.fingerprint():
            raise CheckpointError(
                "state was made with other detector settings; pass config=None to keep its own settings"
            )
        return DetectorState.from_json(state.to_json())._det
    return DetectorState.from_json(state, config)._det


def score_series(
    timestamps: Any,
    values: Any,
    state: DetectorState | bytes | str | None = None,
    config: DetectorConfig | None = None,
    *,
    allow_duplicates: bool = False,
    allow_late: bool = False,
    row_offset: int = 0,
    row_label: str = "row",
) -> tuple[ScoredFrame, DetectorState]:
    """Score a series' new points, continuing from ``state`` (a state object or checkpoint bytes).

    ``timestamps``: ISO-8601 strings, datetimes or ``datetime64`` (naive = UTC), strictly increasing and
    after the state's last point (``allow_duplicates`` lets equal times through, each row scored as its
    own point; ``allow_late`` scores a row older than one already seen in arrival order, at the latest time
    seen so far, and the returned frame carries that time); ``values``: finite numbers. Returns the scored points and the new state
    (the given state is left unchanged). Raises a :class:`DetectInputError` subclass on bad input.
    """
    det = _as_state(state, config)
    ts, vals = prepare(
        timestamps,
        values,
        after_ns=det.last_ts,
        allow_duplicates=allow_duplicates,
        allow_late=allow_late,
        row_offset=row_offset,
        row_label=row_label,
    )
    n = len(ts)
    scores = np.empty(n)
    baseline = np.empty(n)
    kinds = np.empty(n, dtype=object)
    update = det.update
    for i, (t, x) in enumerate(zip(ts.tolist(), vals.tolist(), strict=True)):
        s, k, b, _ = update(t, x)
        scores[i] = s
        kinds[i] = k
        baseline[i] = b
    frame = ScoredFrame(ts.astype("datetime64[ns]"), vals, scores, kinds, baseline)
    return frame, DetectorState(det)


@dataclass
class BatchResult:
    """Result of :func:`score_many`: per series key, the scored points and the new state."""

    frames: dict[Hashable, ScoredFrame] = field(default_factory=dict)
    states: dict[Hashable, DetectorState] = field(default_factory=dict)
    errors: dict[Hashable, str] = field(default_factory=dict)

    @property
    def points(self) -> int:
        return sum(len(f) for f in self.frames.values())

    def anomalies(self, min_score: float = 0.0, *, repeats: bool = False) -> pd.DataFrame:
        """Long table ``series, time, score, kind, baseline, observed``: rows with ``score >= min_score``,
        and with ``repeats`` also those whose ``kind`` is not ``none`` whatever their score (their undamped
        surprise reached the alarm level: repeats that the quiet period after an alarm damped)."""
        parts = []
        for key, f in self.frames.items():
            keep = f.anomaly_score >= min_score
            if repeats:
                keep = keep | (f.kind != "none")
            if not keep.any():
                continue
            parts.append(
                pd.DataFrame(
                    {
                        "series": [key] * int(keep.sum()),
                        "time": f.timestamp[keep],
                        "score": f.anomaly_score[keep],
                        "kind": f.kind[keep],
                        "baseline": f.baseline[keep],
                        "observed": f.observed[keep],
                    }
                )
            )
        if not parts:
            return pd.DataFrame(
                {
                    c: pd.Series(dtype=t)
                    for c, t in zip(
                        ANOMALY_COLUMNS, (object, "datetime64[ns]", float, object, float, float), strict=True
                    )
                }
            )
        return pd.concat(parts, ignore_index=True)


def _iter_series(series: Mapping[Hashable, Any] | Iterable[tuple[Hashable, Any, Any]]) -> Iterator[tuple]:
    if isinstance(series, Mapping):
        for key, pair in series.items():
            ts, vals = pair
            yield key, ts, vals
    else:
        for key, ts, vals in series:
            yield key, ts, vals


def score_many(
    series: Mapping[Hashable, Any] | Iterable[tuple[Hashable, Any, Any]],
    states: Mapping[Hashable, DetectorState | bytes | str | None] | None = None,
    config: DetectorConfig | None = None,
    *,
    on_error: str = "raise",
) -> BatchResult:
    """Score many series: ``{key: (timestamps, values)}`` or an iterable of ``(key, timestamps, values)``.

    ``states`` maps keys to their previous state or checkpoint (missing keys start fresh). With
    ``on_error="collect"`` a series with bad input is skipped and its message kept in ``errors``
    (its previous state is kept unchanged in ``states``); with ``"raise"`` the first error is raised
    with the series key in its message.
    """
    if on_error not in ("raise", "collect"):
        raise ValueError(f"on_error must be 'raise' or 'collect', not {on_error!r}")
    states = states or {}
    out = BatchResult()
    for key, ts, vals in _iter_series(series):
        try:
            frame, state = score_series(ts, vals, states.get(key), config)
        except DetectInputError as exc:
            if on_error == "raise":
                raise type(exc)(f"series {key!r}: {exc}") from exc
            out.errors[key] = str(exc)
            prev = states.get(key)
            if prev is not None:
                out.states[key] = prev if isinstance(prev, DetectorState) else DetectorState.from_json(prev)
            continue
        out.frames[key] = frame
        out.states[key] = state
    return out


def score_long_frame(
    df: pd.DataFrame,
    series_columns: list[str],
    time_column: str,
    value_column: str,
    states: Mapping[Hashable, DetectorState | bytes | str | None] | None = None,
    config: DetectorConfig | None = None,
    *,
    on_error: str = "collect",
    workers: int = 1,
) -> BatchResult:
    """Score a long table (one row per series and time, e.g. a warehouse partition).

    The series key is the tuple of ``series_columns`` values (a plain value when there is one column).
    Rows are sorted by time within each series; duplicate times within a series are an error for it.
    With ``workers`` > 1 the series are split between that many processes (the same result: each series is
    scored on its own; worth it only for many points, as each process starts Python and pandas).
    """
    missing = [c for c in [*series_columns, time_column, value_column] if c not in df.columns]
    if missing:
        raise DetectInputError(f"table lacks column(s) {missing}; it has {list(df.columns)}")
    ordered = df.sort_values([*series_columns, time_column], kind="stable")
    key_arg: Any = series_columns[0] if len(series_columns) == 1 else series_columns
    series = [
        (key, part[time_column], part[value_column].to_numpy()) for key, part in ordered.groupby(key_arg, sort=True)
    ]
    if workers > 1 and len(series) > 1:
        return _score_in_processes(series, states or {}, config, on_error, workers)
    return score_many(series, states, config, on_error=on_error)


def _score_chunk(
    series: list[tuple], states: dict[Hashable, bytes | str | None], config: DetectorConfig | None, on_error: str
) -> tuple[dict[Hashable, ScoredFrame], dict[Hashable, bytes], dict[Hashable, str]]:
    """:func:`score_many` in a worker process, its states as checkpoints (what crosses processes)."""
    out = score_many(series, states, config, on_error=on_error)
    return out.frames, {k: s.to_json() for k, s in out.states.items()}, out.errors


def _score_in_processes(
    series: list[tuple],
    states: Mapping[Hashable, DetectorState | bytes | str | None],
    config: DetectorConfig | None,
    on_error: str,
    workers: int,
) -> BatchResult:
    """:func:`score_many` over ``series`` split between ``workers`` processes by their points (each series
    is scored on its own, so the split changes nothing); the result in the order of ``series``."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    chunks: list[list[tuple]] = [[] for _ in range(min(workers, len(series)))]
    loads = [0] * len(chunks)
    for item in sorted(series, key=lambda item: -len(item[2])):  # the longest first, each to the lightest
        i = loads.index(min(loads))
        chunks[i].append(item)
        loads[i] += len(item[2])
    given = {k: (v.to_json() if isinstance(v, DetectorState) else v) for k, v in states.items()}
    # spawned, not forked: a fork would copy the caller's open connections and threads
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(chunks), mp_context=ctx) as pool:
        futures = [
            pool.submit(_score_chunk, chunk, {k: given.get(k) for k, _, _ in chunk}, config, on_error) for chunk in chunks
        ]
        parts = [f.result() for f in futures]
    frames: dict[Hashable, ScoredFrame] = {}
    saved: dict[Hashable, bytes] = {}
    errors: dict[Hashable, str] = {}
    for f, st, err in parts:
        frames.update(f)
        saved.update(st)
        errors.update(err)
    out = BatchResult()
    for key, _, _ in series:
        if key in frames:
            out.frames[key] = frames[key]
        if key in errors:
            out.errors[key] = errors[key]
        if key in saved:
            out.states[key] = DetectorState.from_json(saved[key])
    return out
