"""Errors raised on bad detector input: each says what was wrong and what to do about it."""

from __future__ import annotations


class DetectInputError(ValueError):
    """Input the detector cannot score (a ``ValueError``, so callers may catch either)."""


class MissingColumnError(DetectInputError):
    """The input lacks a required column (``timestamp`` or ``value``)."""


class TimestampParseError(DetectInputError):
    """A timestamp could not be parsed."""


class UnsortedTimestampsError(DetectInputError):
    """Timestamps go backwards (within the input, or before the checkpoint's last point)."""


class DuplicateTimestampError(DetectInputError):
    """Two points share one timestamp."""


class NonFiniteValueError(DetectInputError):
    """A value is NaN, infinite or not a number."""


class CheckpointError(DetectInputError):
    """A checkpoint cannot be read or belongs to another detector version or configuration."""
