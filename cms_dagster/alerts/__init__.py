"""Alerts: symptoms page, unexplained anomalies warn; routed by one rules file to the outbox, SNS, Slack,
a webhook or PagerDuty. See :mod:`cms_dagster.alerts.router` for dedup, grouping, inhibition and delivery."""
