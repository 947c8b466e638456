"""Alert channels as a Dagster resource: the routing rules and the channels CMS_ALERT_CHANNELS enables, with
Slack's client from dagster-slack's ``SlackResource``. Fields left unset fall back to the environment;
set ones are bound with ``dg.EnvVar`` by :func:`cms_dagster.resources.build_resources`.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster_pagerduty import PagerDutyService
from dagster_slack import SlackResource
from pydantic import Field

from cms_dagster import settings as settings_mod
from cms_dagster.alerts.channels import Channel, ChannelError, channels_from_settings, pagerduty_event
from cms_dagster.alerts.rules import RoutingRules, load_rules

ALERT_FIELDS = {
    "channels": "CMS_ALERT_CHANNELS",
    "rules_file": "CMS_ALERT_RULES_FILE",
    "dagster_url": "CMS_DAGSTER_URL",
    "sns_topic_arn": "CMS_SNS_TOPIC_ARN",
    "slack_bot_token": "SLACK_BOT_TOKEN",
    "slack_channel": "CMS_SLACK_CHANNEL",
    "slack_api_url": "SLACK_API_URL",
    "webhook_url": "CMS_WEBHOOK_URL",
    "pagerduty_routing_key": "PAGERDUTY_ROUTING_KEY",
    "pagerduty_events_url": "PAGERDUTY_EVENTS_URL",
    "cms_home": "CMS_HOME",
    "archive_url": "CMS_ARCHIVE_URL",
}


class AlertsResource(dg.ConfigurableResource):
    """Where alerts go (CMS_ALERT_CHANNELS: outbox, sns, slack, webhook, pagerduty) and the routing rules."""

    channels: str | None = Field(default=None, description="CMS_ALERT_CHANNELS")
    rules_file: str | None = Field(default=None, description="CMS_ALERT_RULES_FILE")
    dagster_url: str | None = Field(default=None, description="CMS_DAGSTER_URL: messages link here")
    sns_topic_arn: str | None = Field(default=None, description="CMS_SNS_TOPIC_ARN")
    slack_bot_token: str | None = Field(default=None, description="SLACK_BOT_TOKEN")
    slack_channel: str | None = Field(default=None, description="CMS_SLACK_CHANNEL")
    slack_api_url: str | None = Field(default=None, description="SLACK_API_URL (stand-ins)")
    webhook_url: str | None = Field(default=None, description="CMS_WEBHOOK_URL")
    pagerduty_routing_key: str | None = Field(default=None, description="PAGERDUTY_ROUTING_KEY")
    pagerduty_events_url: str | None = Field(default=None, description="PAGERDUTY_EVENTS_URL (stand-ins)")
    cms_home: str | None = Field(default=None, description="CMS_HOME")
    archive_url: str | None = Field(default=None, description="CMS_ARCHIVE_URL: the outbox and alert state")

    def settings(self) -> settings_mod.Settings:
        return settings_mod.load(overrides={var: getattr(self, f) for f, var in ALERT_FIELDS.items()})

    def rules(self) -> RoutingRules:
        return load_rules(self.settings().alert_rules_file or None)

    def build_channels(self, archive: Any) -> dict[str, Channel]:
        s = self.settings()
        slack = None
        if "slack" in s.alert_channels and s.slack_bot_token:
            slack = SlackResource(token=s.slack_bot_token).get_client()
            if s.slack_api_url:
                slack.base_url = s.slack_api_url
        channels = channels_from_settings(s, archive, slack_client=slack)
        if "pagerduty" in channels:
            channels["pagerduty"] = PagerDutyServiceChannel(
                PagerDutyService(routing_key=s.pagerduty_routing_key), s.pagerduty_events_url
            )
        return channels


class PagerDutyServiceChannel:
    """PagerDuty Events v2 through dagster-pagerduty's ``PagerDutyService`` (trigger, then resolve with the
    same dedup key). ``events_url`` points it at another Events v2 endpoint (the EU service region, a
    stand-in); the library it uses keeps that endpoint as a class attribute, so it is set before each send."""

    name = "pagerduty"

    def __init__(self, service: PagerDutyService, events_url: str = "") -> None:
        self.service, self.events_url = service, events_url

    def send(self, message: dict[str, Any]) -> str:
        if not message["page"]:
            return "not a page"
        import pypd

        if self.events_url:
            pypd.EventV2.base_url = self.events_url.rstrip("/")
        body = pagerduty_event(message, self.service.routing_key)
        p = body["payload"]
        try:
            resp = self.service.EventV2_create(
                summary=p["summary"], source=p["source"], severity=p["severity"], event_action=body["event_action"],
                dedup_key=body["dedup_key"], timestamp=p["timestamp"], custom_details=p["custom_details"],
            )
        except Exception as exc:  # pypd raises requests' errors or its own
            raise ChannelError(f"PagerDuty refused the event: {type(exc).__name__}: {str(exc)[:160]}") from None
        return str((resp or {}).get("dedup_key", "")) if isinstance(resp, dict) else "sent"
