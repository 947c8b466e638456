"""Routing as operators expect it: dedup, grouping, inhibition, repeat interval, silences, resolve messages,
and deliveries that never lose an alert; each channel against a stand-in that speaks its protocol."""

import json
from pathlib import Path

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from cms_dagster import settings as settings_mod
from cms_dagster.alerts.channels import (
    ChannelError,
    OutboxChannel,
    PagerDutyChannel,
    SlackChannel,
    SnsChannel,
    WebhookChannel,
    channels_from_settings,
)
from cms_dagster.alerts.router import AlertStore, dispatch
from cms_dagster.alerts.rules import Alert, RulesError, load_rules, parse_rules
from cms_dagster.lake import Lake
from cms_dagster.settings import load as load_settings

from .http_standin import HttpStandIn

T0 = pd.Timestamp("2026-11-25T20:00:00Z")
NOOP = {"sleep": lambda s: None}


def feed_down(resolved: str | None = None) -> Alert:
    return Alert("feed:cme-mdp:2026-11-25T20:00Z", "feed", "critical", "feed cme-mdp interrupted", "2026-11-25T20:00:00Z",
                 {"feed": "cme-mdp"}, resolved_at=resolved)


def run_failed(i: int, feeds: str = "cme-mdp,ice-data") -> Alert:
    return Alert(f"run:r{i}:failed", "batch_run", "critical", f"run r{i} of job {i} failed", "2026-11-25T20:05:00Z",
                 {"job": f"job:commodities.j{i}", "asset_class": "commodities", "feeds": feeds})


@pytest.fixture()
def store(cms_home: Path) -> AlertStore:
    return AlertStore(Lake.from_settings(load_settings()).archive)


def outbox(store: AlertStore) -> list[dict]:
    return OutboxChannel(store.zone).read()


def test_a_feed_outage_that_fails_five_jobs_is_one_message(store):
    rules = load_rules()
    alerts = [feed_down()] + [run_failed(i) for i in range(5)]
    rep = dispatch(alerts, rules, store, {"outbox": OutboxChannel(store.zone)}, T0 + pd.Timedelta("6min"), **NOOP)
    assert len(rep.messages) == 1 and rep.messages[0]["title"] == "[CRITICAL] feed cme-mdp interrupted"
    assert sorted(rep.inhibited) == sorted(a.dedup_key for a in alerts[1:])
    assert [m["id"] for m in outbox(store)] == [rep.messages[0]["id"]]
    # a job that does not need the feed is not muted by it
    other = run_failed(9, feeds="ebs-fx")
    rep2 = dispatch([feed_down(), other], rules, store, {"outbox": OutboxChannel(store.zone)}, T0 + pd.Timedelta("7min"), **NOOP)
    assert [m["alerts"][0]["dedup_key"] for m in rep2.messages] == [other.dedup_key]


def test_the_same_alert_is_sent_once_then_after_the_repeat_interval_then_resolved_once(store):
    rules = load_rules()  # critical: repeat every 4h
    ch = {"outbox": OutboxChannel(store.zone)}
    assert len(dispatch([feed_down()], rules, store, ch, T0, **NOOP).messages) == 1
    assert dispatch([feed_down()], rules, store, ch, T0 + pd.Timedelta("1h"), **NOOP).messages == []
    again = dispatch([feed_down()], rules, store, ch, T0 + pd.Timedelta("4h"), **NOOP).messages
    assert len(again) == 1 and again[0]["status"] == "firing"
    done = dispatch([feed_down("2026-11-26T00:30:00Z")], rules, store, ch, T0 + pd.Timedelta("5h"), **NOOP).messages
    assert len(done) == 1 and done[0]["status"] == "resolved" and done[0]["title"].startswith("[RESOLVED]")
    assert dispatch([feed_down("2026-11-26T00:30:00Z")], rules, store, ch, T0 + pd.Timedelta("6h"), **NOOP).messages == []
    (state,) = store.all()
    assert state["notifications"] == 3 and state["status"] == "resolved"


def test_a_page_that_came_and_went_between_evaluations_still_pages_unless_it_is_old_news(store, tmp_path):
    rules = load_rules()
    ch = {"outbox": OutboxChannel(store.zone)}
    # down at 20:00, back at 20:04, first seen at 20:10: the outage happened, the on-call hears of it
    first = dispatch([feed_down("2026-11-25T20:04:00Z")], rules, store, ch, T0 + pd.Timedelta("10min"), **NOOP).messages
    assert [(m["status"], m["page"]) for m in first] == [("firing", True)] and "resolved 2026-11-25T20:04:00Z" in first[0]["text"]
    then = dispatch([feed_down("2026-11-25T20:04:00Z")], rules, store, ch, T0 + pd.Timedelta("20min"), **NOOP).messages
    assert [m["status"] for m in then] == ["resolved"]
    assert dispatch([feed_down("2026-11-25T20:04:00Z")], rules, store, ch, T0 + pd.Timedelta("30min"), **NOOP).messages == []
    # the same outage met first in a back-fill evaluated days later: told once, as resolved, paging no one
    from cms_dagster.lake import Zone

    other = AlertStore(Zone(str(tmp_path / "backfill")))
    late = dispatch([feed_down("2026-11-25T20:04:00Z")], rules, other, {"outbox": OutboxChannel(other.zone)}, T0 + pd.Timedelta("3D"), **NOOP).messages
    assert [m["status"] for m in late] == ["resolved"]


def test_a_silence_records_the_alert_without_sending_it(store):
    doc = {"silences": [{"match": {"feed": ["cme-mdp"]}, "starts": "2026-11-25T19:00:00Z", "ends": "2026-11-25T21:00:00Z", "reason": "vendor maintenance"}]}
    rules = parse_rules(doc)
    rep = dispatch([feed_down()], rules, store, {"outbox": OutboxChannel(store.zone)}, T0, **NOOP)
    assert rep.messages == [] and rep.silenced == [feed_down().dedup_key]
    assert "vendor maintenance" in store.all()[0]["muted"]
    # once the silence ends, the still-firing alert is sent
    assert len(dispatch([feed_down()], rules, store, {"outbox": OutboxChannel(store.zone)}, T0 + pd.Timedelta("2h"), **NOOP).messages) == 1


def test_routes_pick_channels_only_among_the_enabled_ones():
    rules = load_rules()
    (route,) = rules.routes_for(feed_down())
    assert "pagerduty" in route.channels and "outbox" in route.channels
    warn = Alert("anomaly:x", "anomaly", "warning", "x", "2026-11-25T20:00:00Z")
    assert rules.routes_for(warn)[0].repeat_interval == pd.Timedelta("24h")


@pytest.mark.parametrize(
    "doc, where",
    [
        ({"routes": [{"match": {"colour": ["red"]}}]}, "unknown label"),
        ({"routes": [{"channels": ["pager"]}]}, "routes[0].channels"),
        ({"defaults": {"repeat_interval": "soon"}}, "repeat_interval"),
        ({"silences": [{"match": {"feed": ["x"]}}]}, "silences[0]"),
    ],
)
def test_bad_rules_say_which_entry(doc, where):
    with pytest.raises(RulesError, match=where.replace("[", r"\[").replace("]", r"\]")):
        parse_rules(doc)


def test_a_failed_delivery_is_kept_and_delivered_by_the_next_dispatch(store):
    rules = parse_rules({"defaults": {"channels": ["outbox", "webhook"]}})
    with HttpStandIn("webhook", fail=10) as hook:
        channels = {"outbox": OutboxChannel(store.zone), "webhook": WebhookChannel(hook.url + "/hook")}
        rep = dispatch([feed_down()], rules, store, channels, T0, attempts=2, **NOOP)
        assert rep.failed == [f"{rep.messages[0]['id']}:webhook"]
        # the outbox has the message and what the webhook said; the message is pending
        (kept,) = outbox(store)
        assert kept["deliveries"]["webhook"].startswith("error: webhook answered HTTP 500")
        assert len(store.pending()) == 1
        hook.fail = 0
        rep2 = dispatch([], rules, store, channels, T0 + pd.Timedelta("1min"), **NOOP)
        assert rep2.failed == [] and store.pending() == []
        assert [r["body"]["id"] for r in hook.received] == [kept["id"]]


def _message() -> dict:
    return {"id": "msg-1", "status": "firing", "severity": "critical", "page": True, "title": "[CRITICAL] feed cme-mdp interrupted",
            "text": "- feed cme-mdp interrupted", "link": "http://dagster:3000/assets/dbt/fct_feed_status",
            "at": "2026-11-25T20:00:00Z", "dedup_key": "feed:cme-mdp:2026-11-25T20:00Z", "alerts": [{"dedup_key": "feed:cme-mdp:2026-11-25T20:00Z"}]}


def test_sns_messages_arrive_through_an_sqs_subscription():
    with mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name="cms-critical")["TopicArn"]
        q = sqs.create_queue(QueueName="pager")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        SnsChannel(sns, topic).send(_message())
        (got,) = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10)["Messages"]
        envelope = json.loads(got["Body"])
        assert envelope["Subject"] == "[CRITICAL] feed cme-mdp interrupted"
        assert json.loads(envelope["Message"])["link"].endswith("/assets/dbt/fct_feed_status")
        assert envelope["MessageAttributes"]["severity"]["Value"] == "critical"


def test_slack_posts_through_the_web_api_client():
    from slack_sdk import WebClient

    with HttpStandIn("slack") as api:
        SlackChannel(WebClient(token="xoxb-test", base_url=api.url + "/api/"), "#cms-alerts").send(_message())
        with pytest.raises(ChannelError, match="invalid_auth"):
            SlackChannel(WebClient(token="wrong", base_url=api.url + "/api/"), "#cms-alerts").send(_message())
    body = api.received[0]["body"]
    assert body["channel"] == "#cms-alerts" and "feed cme-mdp interrupted" in body["text"]
    assert "http://dagster:3000/assets/dbt/fct_feed_status" in body["text"]


def test_pagerduty_gets_trigger_then_resolve_with_one_dedup_key():
    with PdServer() as pd_api:
        ch = PagerDutyChannel("R0UTING", pd_api.url + "/v2/enqueue")
        ch.send(_message())
        ch.send({**_message(), "status": "resolved"})
        assert ch.send({**_message(), "page": False}) == "not a page"
    actions = [(r["body"]["event_action"], r["body"]["dedup_key"]) for r in pd_api.received]
    assert actions == [("trigger", _message()["dedup_key"]), ("resolve", _message()["dedup_key"])]
    assert pd_api.received[0]["body"]["links"][0]["href"].startswith("http://dagster:3000/")


def PdServer() -> HttpStandIn:
    return HttpStandIn("pagerduty")


def test_channels_come_from_settings_and_say_what_is_missing(cms_home):
    s = settings_mod.load({"CMS_HOME": str(cms_home), "CMS_ALERT_CHANNELS": "outbox,webhook"})
    with pytest.raises(ChannelError, match="CMS_WEBHOOK_URL"):
        channels_from_settings(s, Lake.from_settings(s).archive)
    s = settings_mod.load({"CMS_HOME": str(cms_home), "CMS_ALERT_CHANNELS": "outbox,pagerduty", "PAGERDUTY_ROUTING_KEY": "k"})
    assert set(channels_from_settings(s, Lake.from_settings(s).archive)) == {"outbox", "pagerduty"}
    with pytest.raises(ValueError, match="CMS_ALERT_CHANNELS"):
        settings_mod.load({"CMS_ALERT_CHANNELS": "outbox,pigeon"})


def test_the_dagster_resource_pages_through_dagster_pagerduty(cms_home):
    from cms_dagster.resources.alerts import AlertsResource, PagerDutyServiceChannel

    with PdServer() as pd_api:
        res = AlertsResource(channels="outbox,pagerduty", pagerduty_routing_key="R0UTING", pagerduty_events_url=pd_api.url + "/v2/enqueue")
        channels = res.build_channels(Lake.from_settings(load_settings()).archive)
        assert isinstance(channels["pagerduty"], PagerDutyServiceChannel)
        channels["pagerduty"].send(_message())
        channels["pagerduty"].send({**_message(), "status": "resolved"})
    bodies = [r["body"] for r in pd_api.received]
    assert [(b["event_action"], b["routing_key"]) for b in bodies] == [("trigger", "R0UTING"), ("resolve", "R0UTING")]
    assert bodies[0]["payload"]["summary"] == "[CRITICAL] feed cme-mdp interrupted"


def test_dispatch_reads_the_firing_alerts_from_an_index_that_forgets_them_once_resolved(store):
    rules = load_rules()
    ch = {"outbox": OutboxChannel(store.zone)}
    dispatch([feed_down()], rules, store, ch, T0, **NOOP)
    assert [st["alert"]["dedup_key"] for st in store.firing()] == [feed_down().dedup_key]
    # the outage, still firing though no longer in this evaluation's alerts, inhibits a job that needs the feed
    assert dispatch([run_failed(1)], rules, store, ch, T0 + pd.Timedelta("5min"), **NOOP).inhibited == [run_failed(1).dedup_key]
    dispatch([feed_down("2026-11-25T20:30:00Z")], rules, store, ch, T0 + pd.Timedelta("1h"), **NOOP)
    assert [st["alert"]["dedup_key"] for st in store.firing()] == [run_failed(1).dedup_key]
    assert len(store.all()) == 2


def test_a_store_written_before_the_firing_index_is_indexed_once(store):
    dispatch([feed_down(), run_failed(2, feeds="ebs-fx")], load_rules(), store, {"outbox": OutboxChannel(store.zone)}, T0, **NOOP)
    for key in list(store.zone.list("alerts/firing")):
        store.zone.delete(key)
    store.zone.delete(AlertStore.INDEX_VERSION)
    assert sorted(st["alert"]["dedup_key"] for st in store.firing()) == sorted([feed_down().dedup_key, "run:r2:failed"])
    assert store.zone.exists(AlertStore.INDEX_VERSION)


def test_the_s3_outbox_keeps_every_message_of_concurrent_senders_and_a_resent_one_once(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from cms_dagster.lake import Zone

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="cms-archive")
        zone = Zone("s3://cms-archive/archive")
        msgs = [{**_message(), "id": f"msg-{i:04d}", "at": f"2026-11-25T20:{i % 60:02d}:00Z"} for i in range(40)]
        senders = [OutboxChannel(Zone(zone.url)) for _ in range(4)]  # as four processes would, each its own
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: senders[i % 4].send(msgs[i]), range(40)))
        OutboxChannel(zone).send(msgs[7])  # the same evaluation run again
        got = OutboxChannel(zone).read()
        assert sorted(m["id"] for m in got) == [m["id"] for m in msgs]
        assert [m["at"] for m in got] == sorted(m["at"] for m in msgs)
