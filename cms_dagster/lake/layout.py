"""The lake's key layout, all of it: which zone holds what, under which key (docs/data-contract.md).

Keys are relative to their zone's URL (``CMS_RAW_URL``, ``CMS_PROCESSED_URL``, ``CMS_ARCHIVE_URL``) and always
use ``/``. Times are UTC.

raw zone
    ``otel/metrics/source=<cloudwatch|metric-stream|sdk>/dt=YYYY-MM-DD/hour=HH/<batch>.jsonl.gz``  (:func:`raw_key`)
    ``quarantine/otel/metrics/source=<s>/dt=…/hour=HH/<batch>[.<writer>].<what>``  (:func:`quarantine_key`)
    ``checkpoints/<producer>/…``  where collectors, the receiver and detection keep their place
processed zone
    ``points/dt=YYYY-MM-DD/hour=HH/<source>--<batch>.parquet``  (:func:`processed_key`)
archive zone
    ``simulations/<name>/labels.json``, ``simulations/<name>/truth/*.csv``, ``simulations/<name>/sdk_events.jsonl``
    ``incidents/<id>.json``  incident reports (:func:`incident_key`)
    ``alerts/state/<id>.json``, ``alerts/firing/<id>.json``, ``alerts/pending/<message id>.json``  alert state,
    the index of firing alerts, undelivered messages (:func:`alert_key`)
    ``alerts/outbox/dt=YYYY-MM-DD/messages.jsonl``  the outbox channel, by data day (:func:`outbox_key`; on S3 one ``<message id>.jsonl`` each)

A batch is named ``<YYYYMMDDTHHMMSSZ>-<producer>-<suffix>`` (:func:`batch_name`), so names sort by ingest time.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

ZONES = ("raw", "processed", "archive")

# --- raw zone -----------------------------------------------------------------------------------------
RAW_PREFIX = "otel/metrics"
SOURCES = ("cloudwatch", "metric-stream", "sdk")
QUARANTINE_PREFIX = "quarantine"
CHECKPOINTS_PREFIX = "checkpoints"
COLLECTOR_CHECKPOINTS = f"{CHECKPOINTS_PREFIX}/collector/cloudwatch"  # <account>/<region>/dt=…/hour=HH.json
DISCOVERY_CHECKPOINTS = f"{CHECKPOINTS_PREFIX}/collector/discovery"
METRIC_STREAMS_CHECKPOINTS = f"{CHECKPOINTS_PREFIX}/collector/metric-streams"  # <url digest>.json
INGEST_CHECKPOINTS = f"{CHECKPOINTS_PREFIX}/ingest"  # probe-<instance>: the receiver's write check
DETECT_CHECKPOINTS = f"{CHECKPOINTS_PREFIX}/detect"  # <source>/…: the detector's state per hour boundary

# --- processed zone -----------------------------------------------------------------------------------
POINTS_PREFIX = "points"

# --- archive zone -------------------------------------------------------------------------------------
SIMULATIONS_PREFIX = "simulations"
INCIDENTS_PREFIX = "incidents"
ALERTS_PREFIX = "alerts"
ALERT_KINDS = ("state", "firing", "pending")
OUTBOX_PREFIX = f"{ALERTS_PREFIX}/outbox/"

_BATCH_RE = re.compile(r"^(\d{8}T\d{6}Z)-")
_RAW_KEY_RE = re.compile(
    r"^otel/metrics/source=(?P<source>[a-z-]+)/dt=(?P<dt>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})/(?P<batch>[^/]+)\.jsonl\.gz$"
)


def hour_prefix(day: dt.date, hour: int) -> str:
    return f"dt={day.isoformat()}/hour={hour:02d}"


def raw_key(source: str, when: dt.datetime, batch: str) -> str:
    """``otel/metrics/source=<s>/dt=YYYY-MM-DD/hour=HH/<batch>.jsonl.gz`` for the hour of ``when`` (UTC)."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}: use one of {', '.join(SOURCES)}")
    when = when.astimezone(dt.timezone.utc)
    return f"{RAW_PREFIX}/source={source}/{hour_prefix(when.date(), when.hour)}/{batch}.jsonl.gz"


def raw_hour_prefix(source: str, day: dt.date, hour: int) -> str:
    """``otel/metrics/source=<s>/dt=YYYY-MM-DD/hour=HH/``: where one source's batches of one hour are."""
    return f"{RAW_PREFIX}/source={source}/{hour_prefix(day, hour)}/"


def parse_raw_key(key: str) -> dict[str, Any]:
    m = _RAW_KEY_RE.match(key)
    if not m:
        raise ValueError(
            f"not a raw key: {key!r} (expected {RAW_PREFIX}/source=S/dt=YYYY-MM-DD/hour=HH/BATCH.jsonl.gz)"
        )
    return {
        "source": m["source"],
        "dt": dt.date.fromisoformat(m["dt"]),
        "hour": int(m["hour"]),
        "batch": m["batch"],
    }


def batch_name(ingest_time: dt.datetime, producer: str, suffix: str) -> str:
    """``<YYYYMMDDTHHMMSSZ>-<producer>-<suffix>``: names sort by ingest time."""
    t = ingest_time.astimezone(dt.timezone.utc)
    return f"{t:%Y%m%dT%H%M%SZ}-{producer}-{suffix}"


def batch_ingest_time(batch: str) -> dt.datetime | None:
    m = _BATCH_RE.match(batch)
    if not m:
        return None
    return dt.datetime.strptime(m[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)


def quarantine_key(source: str, day: dt.date, hour: int, batch: str, what: str, writer: str | None = None) -> str:
    """``quarantine/otel/metrics/source=<s>/dt=…/hour=HH/<batch>[.<writer>].<what>`` in the raw zone.

    ``what`` says what the file is (``jsonl.gz`` the batch as received, ``rejected.jsonl`` the rejected
    lines, ``reason.json`` why, ``undecodable`` a file that could not be decoded); ``writer`` keeps the
    quarantine of different steps for the same batch apart (``received`` the receiver, ``processed…`` the
    processing step)."""
    tag = f".{writer}" if writer else ""
    return f"{QUARANTINE_PREFIX}/{raw_hour_prefix(source, day, hour)}{batch}{tag}.{what}"


def quarantine_key_for(raw: str, what: str, writer: str | None = None) -> str:
    """:func:`quarantine_key` for the batch at raw key ``raw``."""
    p = parse_raw_key(raw)
    return quarantine_key(p["source"], p["dt"], p["hour"], p["batch"], what, writer)


def processed_key(day: dt.date, hour: int, source: str, batch: str) -> str:
    return f"{POINTS_PREFIX}/{hour_prefix(day, hour)}/{source}--{batch}.parquet"


def processed_hour_prefix(day: dt.date, hour: int) -> str:
    """``points/dt=YYYY-MM-DD/hour=HH/``: where one hour's Parquet files are."""
    return f"{POINTS_PREFIX}/{hour_prefix(day, hour)}/"


def simulation_prefix(name: str) -> str:
    """``simulations/<name>/`` in the archive zone: a simulation's labels, truth tables and SDK events."""
    return f"{SIMULATIONS_PREFIX}/{name}/"


def incident_key(incident: str) -> str:
    """``incidents/<id>.json`` in the archive zone: one incident's report (replaced as it is updated)."""
    return f"{INCIDENTS_PREFIX}/{incident}.json"


def alert_prefix(kind: str) -> str:
    """``alerts/<kind>/`` in the archive zone, ``kind`` one of :data:`ALERT_KINDS`."""
    if kind not in ALERT_KINDS:
        raise ValueError(f"unknown alert record {kind!r}: use one of {', '.join(ALERT_KINDS)}")
    return f"{ALERTS_PREFIX}/{kind}/"


def alert_key(kind: str, ident: str) -> str:
    """``alerts/<kind>/<id>.json``: an alert's state, its firing marker, or an undelivered message."""
    return f"{alert_prefix(kind)}{ident}.json"


def outbox_key(day: str, message_id: str | None = None) -> str:
    """``alerts/outbox/dt=YYYY-MM-DD/messages.jsonl``: the outbox's messages of one data day, appended to;
    with ``message_id``, ``alerts/outbox/dt=YYYY-MM-DD/<message_id>.jsonl``: one message (S3, where an
    object cannot be appended to)."""
    return f"{OUTBOX_PREFIX}dt={day}/{message_id or 'messages'}.jsonl"
