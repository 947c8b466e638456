"""Streaming anomaly detection for metric series (no Dagster here: plain data in, data out).

Entry points: :func:`score_series` (one series, with an optional checkpoint), :func:`score_many`
(many series), :func:`score_long_frame` (a long warehouse table), :class:`DetectorState` (checkpoints as
JSON bytes) and :class:`DetectorConfig` (one set of settings for every series).
"""

from .api import BatchResult, DetectorState, ScoredFrame, score_long_frame, score_many, score_series
from .config import DetectorConfig
from .detector import KINDS
from .errors import (
    CheckpointError,
    DetectInputError,
    DuplicateTimestampError,
    MissingColumnError,
    NonFiniteValueError,
    TimestampParseError,
    UnsortedTimestampsError,
)

__all__ = [
    "KINDS",
    "BatchResult",
    "CheckpointError",
    "DetectInputError",
    "DetectorConfig",
    "DetectorState",
    "DuplicateTimestampError",
    "MissingColumnError",
    "NonFiniteValueError",
    "ScoredFrame",
    "TimestampParseError",
    "UnsortedTimestampsError",
    "score_long_frame",
    "score_many",
    "score_series",
]
