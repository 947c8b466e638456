"""The alert dispatcher: dedup, silences, inhibition, routing, grouping, repeat interval, resolve messages,
and delivery that never loses an alert.

``dispatch(alerts, rules, store, channels, now)`` takes the alerts as they stand at data time ``now``:

- **Dedup.** An alert is known by its ``dedup_key``; its state (first seen, last notified, resolved) is
  kept in the store, so the same symptom seen by a hook, a sensor and a re-run is one alert.
- **Silences** and **inhibition** (e.g. a job's alert while the feed it needs is down) record the alert
  without sending it.
- **Routing.** The first matching route (or several with ``continue``) gives the channels (those enabled by
  CMS_ALERT_CHANNELS; the outbox always) and the labels to group by.
- **Sending.** A new firing alert is sent; a firing one again after its route's ``repeat_interval``; a
  resolved one that had been sent gets one resolve message. A paging alert first seen already resolved
  pages when it ended within ``FRESH_PAGE`` of ``now`` (then resolves at the next dispatch), and is told
  by its resolve message alone when it ended earlier (a back-fill). Alerts to send with the same route, group
  labels and status become **one message**.
- **Delivery.** Every message is written to the outbox first, with each channel's result; a channel that
  fails is retried (``attempts``), and what still failed is kept under ``alerts/pending/`` and retried by
  the next dispatch. Nothing is dropped.

Plain Python; no Dagster. The store is a lake zone (the archive zone): ``alerts/state/<id>.json``, and an
index of the alerts still firing (``alerts/firing/<id>.json``, one small file each, written and removed
with the state), so that a dispatch reads what may inhibit or repeat, not every alert ever stored.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cms_dagster.alerts.channels import Channel, OutboxChannel
from cms_dagster.alerts.rules import Alert, RoutingRules, _iso
from cms_dagster.lake.layout import ALERTS_PREFIX, alert_key, alert_prefix

__all__ = ["AlertStore", "DispatchReport", "FRESH_PAGE", "dispatch", "retry_pending"]

# a paging symptom first seen already resolved still pages when it ended at most this long before the
# evaluation's data time (live evaluations are at most an hour of data apart); one that ended earlier (a
# back-fill of last week) gets its resolve message only
FRESH_PAGE = pd.Timedelta(hours=1)


def _ts(text: str | None) -> pd.Timestamp | None:
    if not text:
        return None
    t = pd.Timestamp(text)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


class AlertStore:
    """Alert state by dedup key, an index of the firing ones, and undelivered messages, in a lake zone."""

    INDEX_VERSION = f"{ALERTS_PREFIX}/firing-index-v1"  # present once the firing index covers every stored state

    def __init__(self, zone: Any) -> None:
        self.zone = zone

    def _key(self, alert_id: str) -> str:
        return alert_key("state", alert_id)

    def _firing_key(self, alert_id: str) -> str:
        return alert_key("firing", alert_id)

    def get(self, alert: Alert) -> dict[str, Any] | None:
        key = self._key(alert.id)
        return json.loads(self.zone.get(key)) if self.zone.exists(key) else None

    def put(self, state: dict[str, Any]) -> None:
        alert_id = state["alert"]["id"]
        self.zone.put(self._key(alert_id), json.dumps(state, sort_keys=True, indent=1).encode())
        self._index(state)

    def _index(self, state: dict[str, Any]) -> None:
        marker = self._firing_key(state["alert"]["id"])
        if state.get("status") == "firing":
            self.zone.put(marker, json.dumps(state, sort_keys=True).encode())
        elif self.zone.exists(marker):
            self.zone.delete(marker)

    def all(self) -> list[dict[str, Any]]:
        """Every stored alert state (``cms alerts list``); dispatch reads :meth:`firing` instead."""
        return [json.loads(self.zone.get(k)) for k in sorted(self.zone.list(alert_prefix("state"))) if k.endswith(".json")]

    def firing(self) -> list[dict[str, Any]]:
        """The states of the alerts still firing, from the index (built once from every state for a store
        written before the index existed)."""
        if not self.zone.exists(self.INDEX_VERSION):
            for st in self.all():
                self._index(st)
            self.zone.put(self.INDEX_VERSION, b"firing alerts are indexed under alerts/firing/\n")
        return [json.loads(self.zone.get(k)) for k in sorted(self.zone.list(alert_prefix("firing"))) if k.endswith(".json")]

    def pending(self) -> list[tuple[str, dict[str, Any]]]:
        return [(k, json.loads(self.zone.get(k))) for k in sorted(self.zone.list(alert_prefix("pending"))) if k.endswith(".json")]

    def add_pending(self, message: dict[str, Any], channels: list[str]) -> None:
        self.zone.put(alert_key("pending", message["id"]), json.dumps({"message": message, "channels": channels}).encode())

    def done_pending(self, key: str) -> None:
        self.zone.delete(key)


@dataclass
class DispatchReport:
    messages: list[dict[str, Any]]
    silenced: list[str]
    inhibited: list[str]
    failed: list[str]  # "<message id>:<channel>" still undelivered (kept as pending)

    def to_dict(self) -> dict[str, Any]:
        return {"messages": len(self.messages), "silenced": self.silenced, "inhibited": self.inhibited, "failed": self.failed}


def _message(alerts: list[Alert], status: str, route_channels: list[str], now: pd.Timestamp, dagster_url: str) -> dict[str, Any]:
    first = alerts[0]
    n = len(alerts)
    head = first.summary if n == 1 else f"{first.summary} (+{n - 1} more)"
    title = ("[RESOLVED] " if status == "resolved" else f"[{first.severity.upper()}] ") + head
    lines = [f"- {a.summary} (since {a.at}" + (f", resolved {a.resolved_at})" if a.resolved_at else ")") for a in alerts]
    incidents = sorted({a.incident_id for a in alerts if a.incident_id})
    if incidents:
        lines.append("incident report: " + ", ".join(f"{dagster_url}/assets/intelligence/incident_report?partition={i}" for i in incidents))
    keys = sorted(a.dedup_key for a in alerts)
    mid = hashlib.sha256(json.dumps([keys, status, _iso(now)]).encode()).hexdigest()[:16]
    return {
        "id": f"msg-{mid}",
        "status": status,
        "severity": first.severity,
        "page": any(a.page for a in alerts),
        "title": title,
        "text": "\n".join(lines),
        "link": first.link or dagster_url,
        "at": _iso(now),
        "dedup_key": first.dedup_key if n == 1 else "group:" + hashlib.sha256("|".join(keys).encode()).hexdigest()[:12],
        "channels": route_channels,
        "alerts": [a.to_dict() for a in alerts],
        "incident_ids": incidents,
    }


def _deliver(
    message: dict[str, Any],
    channels: Mapping[str, Channel],
    names: list[str],
    attempts: int,
    backoff: float,
    sleep: Callable[[float], None],
) -> dict[str, str]:
    results: dict[str, str] = {}
    for name in names:
        ch = channels.get(name)
        if ch is None:
            results[name] = "error: channel not enabled (CMS_ALERT_CHANNELS)"
            continue
        for attempt in range(attempts):
            try:
                results[name] = "ok " + ch.send(message)
                break
            except Exception as exc:  # any channel fault: retried, then kept as pending
                results[name] = f"error: {exc}"
                if attempt + 1 < attempts:
                    sleep(backoff * (2**attempt))
    return results


def dispatch(
    alerts: list[Alert],
    rules: RoutingRules,
    store: AlertStore,
    channels: Mapping[str, Channel],
    now: pd.Timestamp,
    *,
    dagster_url: str = "http://127.0.0.1:3000",
    attempts: int = 3,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> DispatchReport:
    """Record ``alerts`` as of data time ``now`` and send what is due (see the module doc)."""
    now = _ts(_iso(now))
    retried = retry_pending(store, channels, attempts=attempts, backoff=backoff, sleep=sleep)
    firing = [a for a in alerts if not a.resolved_at or _ts(a.resolved_at) > now]
    current = {a.dedup_key for a in alerts}
    for st in store.firing():  # alerts still firing from earlier evaluations inhibit too
        prev = Alert.from_dict(st["alert"])
        if prev.dedup_key not in current:
            firing.append(prev)
    groups: dict[tuple, list[Alert]] = {}
    route_of: dict[tuple, list[str]] = {}
    silenced, inhibited = [], []
    states: dict[str, dict[str, Any]] = {}
    before: dict[str, str] = {}  # each state as read: only changed states are written back
    for a in sorted(alerts, key=lambda a: (a.at, a.dedup_key)):
        st = store.get(a) or {"first_at": a.at, "last_sent": None, "sent_status": None, "notifications": 0}
        before[a.dedup_key] = json.dumps(st, sort_keys=True)
        resolved = bool(a.resolved_at) and _ts(a.resolved_at) <= now
        st.update(alert=a.to_dict(), status="resolved" if resolved else "firing")
        routes = rules.routes_for(a)
        names = sorted({c for r in routes for c in r.channels if c == "outbox" or c in channels} | {"outbox"})
        st["channels"] = names
        states[a.dedup_key] = st
        silence = rules.silenced(a, now)
        muter = None if resolved else rules.inhibited_by(a, firing)
        if silence is not None:
            st["muted"] = f"silenced: {silence.reason or 'silence'} until {_iso(silence.ends)}"
            silenced.append(a.dedup_key)
            continue
        if muter is not None:
            st["muted"] = f"inhibited by {muter.dedup_key}"
            inhibited.append(a.dedup_key)
            continue
        st["muted"] = None
        repeat = min(r.repeat_interval for r in routes)
        if resolved and st["sent_status"] is None and a.page and now - _ts(a.resolved_at) <= FRESH_PAGE:
            # a paging symptom that came and went since the last look, moments ago (a run that finished a
            # few minutes past its SLA between two evaluations): the SLA was still missed, so it pages; the
            # resolve message follows at the next dispatch
            due, status = True, "firing"
        elif resolved:
            # one resolve message: after the firing one, or alone for a symptom that ended long before it
            # was first seen (a back-fill, a late batch of data): it is still told, never dropped
            due = st["sent_status"] != "resolved"
            status = "resolved"
        else:
            last = _ts(st["last_sent"])
            due = st["sent_status"] != "firing" or (last is not None and now - last >= repeat)
            status = "firing"
        if not due:
            continue
        group_by = routes[0].group_by
        gkey = (tuple(names), status, a.severity, tuple(a.label(g) for g in group_by))
        groups.setdefault(gkey, []).append(a)
        route_of[gkey] = names
    messages, failed = [], []
    outbox = channels.get("outbox") or OutboxChannel(store.zone)
    for gkey, members in groups.items():
        msg = _message(members, gkey[1], route_of[gkey], now, dagster_url)
        others = [n for n in route_of[gkey] if n != "outbox"]
        results = _deliver(msg, channels, others, attempts, backoff, sleep)
        msg["deliveries"] = results
        outbox.send(msg)  # the outbox keeps every message, with what each channel said
        bad = [n for n, r in results.items() if r.startswith("error")]
        if bad:
            store.add_pending(msg, bad)
            failed += [f"{msg['id']}:{n}" for n in bad]
        for a in members:
            st = states[a.dedup_key]
            st["last_sent"] = _iso(now)
            st["sent_status"] = gkey[1]
            st["notifications"] += 1
            st.setdefault("messages", []).append(msg["id"])
        messages.append(msg)
    for key, st in states.items():
        if json.dumps(st, sort_keys=True) != before[key]:
            store.put(st)
    return DispatchReport(messages, silenced, inhibited, failed + retried)


def retry_pending(
    store: AlertStore,
    channels: Mapping[str, Channel],
    *,
    attempts: int = 3,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Send again what earlier dispatches could not deliver; returns what is still pending."""
    still = []
    for key, item in store.pending():
        results = _deliver(item["message"], channels, item["channels"], attempts, backoff, sleep)
        bad = [n for n, r in results.items() if r.startswith("error")]
        if bad:
            store.add_pending(item["message"], bad)
            still += [f"{item['message']['id']}:{n}" for n in bad]
        else:
            store.done_pending(key)
    return still
