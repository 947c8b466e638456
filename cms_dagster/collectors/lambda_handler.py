"""The collector as a Lambda function, run by an EventBridge schedule (e.g. ``cron(10 * * * ? *)``).

``handler`` collects the previous complete hour before the event's time, and catches up the hours before it
that have no checkpoint yet (``catch_up_hours``, default 3), so a failed or missed invocation leaves no gap.
An event with ``start`` and ``end`` (ISO-8601) collects that range instead, overwriting it. Returns the run
summary; raises when a target failed (so Lambda's retries and error metrics see it). No Dagster here.

Environment: as ``cms collect`` (CMS_AWS_REGIONS, CMS_AWS_ROLE_ARNS, CMS_CW_*), and CMS_RAW_URL or
CMS_LAKE_URL pointing at S3. Without CMS_AWS_REGIONS the function's own region is collected.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from cms_dagster import lake, settings
from cms_dagster.collectors.collector import CollectorConfig, collect
from cms_dagster.collectors.windows import previous_hour

log = logging.getLogger(__name__)
DEFAULT_CATCH_UP_HOURS = 3


class CollectionFailed(RuntimeError):
    pass


def _time(value: str) -> dt.datetime:
    v = value.strip().replace("Z", "+00:00")
    t = dt.datetime.fromisoformat(v)
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t


def handler(event: dict[str, Any] | None, context: Any = None) -> dict[str, Any]:
    event = event or {}
    s = settings.load()
    config = CollectorConfig.from_settings(s)
    raw = lake.Zone(s.raw_url)
    if event.get("start"):
        start = _time(event["start"])
        end = _time(event["end"]) if event.get("end") else start + dt.timedelta(hours=1)
        summary = collect(config, raw, start, end)
    else:
        now = _time(event["time"]) if event.get("time") else None  # EventBridge's scheduled time
        start, end = previous_hour(now)
        catch_up = int(event.get("catch_up_hours", DEFAULT_CATCH_UP_HOURS))
        summary = collect(config, raw, start - dt.timedelta(hours=max(0, catch_up - 1)), end, skip_done=True)
    result = summary.as_dict()
    log.info("cms collect: %s", json.dumps({k: v for k, v in result.items() if k != "raw_keys"}))
    if not summary.ok:
        raise CollectionFailed(json.dumps({"errors": summary.errors, "summary": result})[:200_000])
    return result
