"""Declarative automation: how the graph keeps itself current, and the convention every new asset follows.

The hourly ingest schedule (``hourly_ingest``) loads each hour's points into ``raw.metric_points``; from
there on nothing is scheduled. Every asset downstream of the points carries an ``AutomationCondition`` and
the automation sensor below (running by default) evaluates them every 30 seconds, so each asset is
materialized when its inputs have been, hour by hour:

* ``HOURLY`` for assets partitioned by ``hourly_partitions``: a partition is requested when it is missing
  or one of its inputs was updated, once no input is missing or in progress. Not only the latest hour:
  any hour of the last ``LATE_DAYS`` days, so an hour whose data arrive late (a re-collected CloudWatch
  hour, a retried load) is re-processed down the graph when its points are re-loaded.
* ``UNPARTITIONED`` for the rest (dimensions, reference data, reports): requested when missing, when an
  input was updated (for a dimension over the hourly facts: any hour) or when its code changed (an edited
  seed or model).

Convention: an asset that reads the warehouse's points or anything built from them sets
``automation_condition=automation.HOURLY`` (or ``automation.UNPARTITIONED``, or a condition built on them
for another partitioning, such as incident reports), and the dbt translator does so for every dbt node.
tests/integration/test_automation.py fails for an asset downstream of ``warehouse/metric_points`` without one.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

LATE_DAYS = 2

HOURLY = (
    dg.AutomationCondition.in_latest_time_window(lookback_delta=dt.timedelta(days=LATE_DAYS))
    & (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label(f"hourly: when its inputs update (hours of the last {LATE_DAYS} days)")

UNPARTITIONED = (
    dg.AutomationCondition.eager() | dg.AutomationCondition.code_version_changed()
).with_label("when missing, when its inputs update or when its code changes")

automation_sensor = dg.AutomationConditionSensorDefinition(
    "cms_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates every asset's automation condition (cms_dagster/defs/automation.py): the graph "
    "below raw.metric_points refreshes as each hour's points arrive.",
)
