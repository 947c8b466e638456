"""Alert channels: the outbox (JSON lines in the lake), SNS, Slack, a generic webhook and PagerDuty Events v2.

Each channel has ``name`` and ``send(message) -> str`` (a delivery reference) and raises on failure; the
dispatcher (:mod:`cms_dagster.alerts.router`) retries and keeps what could not be delivered. A message is a
dict: ``id``, ``status`` (firing | resolved), ``severity``, ``page``, ``title``, ``text``, ``link``,
``alerts`` (the grouped alerts) and ``dedup_key``. Plain Python; no Dagster.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from cms_dagster.lake.layout import OUTBOX_PREFIX, outbox_key

__all__ = [
    "Channel",
    "ChannelError",
    "OutboxChannel",
    "PagerDutyChannel",
    "SlackChannel",
    "SnsChannel",
    "WebhookChannel",
    "channels_from_settings",
    "outbox_key",
    "pagerduty_event",
]

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


class ChannelError(RuntimeError):
    """A channel could not deliver (or is not configured); the message says what to set."""


class Channel(Protocol):
    name: str

    def send(self, message: dict[str, Any]) -> str: ...


class OutboxChannel:
    """JSON lines in the lake (archive zone, ``alerts/outbox/dt=YYYY-MM-DD/messages.jsonl``, by data day).

    A local zone appends each message to the day's file (one ``O_APPEND`` write per line, so concurrent
    senders never interleave or overwrite). An S3 object cannot be appended to, and reading the day's file,
    adding a line and writing it back would lose a message sent by another process in between: on S3 each
    message is its own object, ``dt=YYYY-MM-DD/<message id>.jsonl``, written only if absent, so a message
    sent twice (a re-run of the same evaluation) is kept once.
    """

    name = "outbox"

    def __init__(self, zone: Any) -> None:
        self.zone = zone

    def send(self, message: dict[str, Any]) -> str:
        day = str(message["at"])[:10]
        line = (json.dumps(message, sort_keys=True) + "\n").encode()
        if getattr(self.zone, "is_s3", False):
            key = outbox_key(day, str(message["id"]))
            self.zone.put_new(key, line)
            return self.zone.uri(key)
        key = outbox_key(day)
        path = self.zone.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as fh:
            fh.write(line)
        return self.zone.uri(key)

    def read(self) -> list[dict[str, Any]]:
        """Every message, day by day; within a day in the order sent (local) or by data time (S3)."""
        days: dict[str, list[dict[str, Any]]] = {}
        for key in sorted(self.zone.list(OUTBOX_PREFIX)):
            if key.endswith(".jsonl"):
                day = key[len(OUTBOX_PREFIX):].split("/", 1)[0]
                days.setdefault(day, []).extend(json.loads(x) for x in self.zone.get(key).decode().splitlines() if x.strip())
        out: list[dict[str, Any]] = []
        for day in sorted(days):
            msgs = days[day]
            out += sorted(msgs, key=lambda m: str(m.get("at", ""))) if getattr(self.zone, "is_s3", False) else msgs
        return out


class SnsChannel:
    """Amazon SNS: one publish per message (subject = title, attributes severity and status)."""

    name = "sns"

    def __init__(self, client: Any, topic_arn: str) -> None:
        if not topic_arn:
            raise ChannelError("the sns channel needs CMS_SNS_TOPIC_ARN")
        self.client, self.topic_arn = client, topic_arn

    def send(self, message: dict[str, Any]) -> str:
        resp = self.client.publish(
            TopicArn=self.topic_arn,
            Subject=message["title"][:99],
            Message=json.dumps(message, sort_keys=True),
            MessageAttributes={
                "severity": {"DataType": "String", "StringValue": message["severity"]},
                "status": {"DataType": "String", "StringValue": message["status"]},
            },
        )
        return str(resp["MessageId"])


class SlackChannel:
    """Slack's chat.postMessage through a ``slack_sdk.WebClient`` (dagster-slack's ``SlackResource`` gives one)."""

    name = "slack"

    def __init__(self, client: Any, channel: str) -> None:
        self.client, self.channel = client, channel

    def send(self, message: dict[str, Any]) -> str:
        from slack_sdk.errors import SlackApiError

        icon = ":rotating_light:" if message["page"] and message["status"] == "firing" else (
            ":white_check_mark:" if message["status"] == "resolved" else ":warning:"
        )
        try:
            resp = self.client.chat_postMessage(
                channel=self.channel,
                text=f"{icon} {message['title']}\n{message['text']}\n<{message['link']}|Open in Dagster>",
            )
        except SlackApiError as exc:
            raise ChannelError(f"Slack refused the message: {exc.response.get('error')}") from None
        return str(resp.get("ts", ""))


class WebhookChannel:
    """A JSON POST of the message to CMS_WEBHOOK_URL (2xx = delivered)."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        if not url:
            raise ChannelError("the webhook channel needs CMS_WEBHOOK_URL")
        self.url, self.timeout = url, timeout

    def send(self, message: dict[str, Any]) -> str:
        import httpx

        try:
            resp = httpx.post(self.url, json=message, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise ChannelError(f"webhook unreachable: {type(exc).__name__}") from None
        if resp.status_code // 100 != 2:
            raise ChannelError(f"webhook answered HTTP {resp.status_code}")
        return str(resp.status_code)


class PagerDutyChannel:
    """PagerDuty Events API v2: trigger for a firing page, resolve when it clears (same dedup_key)."""

    name = "pagerduty"

    def __init__(self, routing_key: str, url: str = "", timeout: float = 10.0) -> None:
        if not routing_key:
            raise ChannelError("the pagerduty channel needs PAGERDUTY_ROUTING_KEY")
        self.routing_key, self.url, self.timeout = routing_key, url or PAGERDUTY_EVENTS_URL, timeout

    def send(self, message: dict[str, Any]) -> str:
        import httpx

        if not message["page"]:
            return "not a page"
        body = pagerduty_event(message, self.routing_key)
        try:
            resp = httpx.post(self.url, json=body, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise ChannelError(f"PagerDuty unreachable: {type(exc).__name__}") from None
        if resp.status_code != 202:
            raise ChannelError(f"PagerDuty answered HTTP {resp.status_code}: {resp.text[:200]}")
        return str(resp.json().get("dedup_key", ""))


def pagerduty_event(message: dict[str, Any], routing_key: str) -> dict[str, Any]:
    """The Events API v2 body of a message: trigger while firing, resolve when it clears (same dedup_key)."""
    return {
        "routing_key": routing_key,
        "event_action": "resolve" if message["status"] == "resolved" else "trigger",
        "dedup_key": message["dedup_key"],
        "payload": {
            "summary": message["title"][:1024],
            "source": "cms",
            "severity": "critical",
            "timestamp": message["at"],
            "custom_details": {"text": message["text"], "alerts": [a["dedup_key"] for a in message["alerts"]]},
        },
        "links": [{"href": message["link"], "text": "Dagster"}],
    }


def channels_from_settings(settings: Any, archive: Any, *, slack_client: Any = None, sns_client: Any = None) -> dict[str, Channel]:
    """The channels CMS_ALERT_CHANNELS enables (the outbox always), built from the settings."""
    out: dict[str, Channel] = {"outbox": OutboxChannel(archive)}
    for name in settings.alert_channels:
        if name == "sns":
            if sns_client is None:
                from cms_dagster.lake import aws

                sns_client = aws.client("sns", region=settings.aws_default_region)
            out[name] = SnsChannel(sns_client, settings.sns_topic_arn)
        elif name == "slack":
            if slack_client is None:
                if not settings.slack_bot_token:
                    raise ChannelError("the slack channel needs SLACK_BOT_TOKEN")
                from slack_sdk import WebClient

                slack_client = WebClient(token=settings.slack_bot_token, **({"base_url": settings.slack_api_url} if settings.slack_api_url else {}))
            out[name] = SlackChannel(slack_client, settings.slack_channel)
        elif name == "webhook":
            out[name] = WebhookChannel(settings.webhook_url)
        elif name == "pagerduty":
            out[name] = PagerDutyChannel(settings.pagerduty_routing_key, settings.pagerduty_events_url)
    return out
