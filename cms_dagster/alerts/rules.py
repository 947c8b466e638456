"""Alerts and their routing rules (one YAML file: routes, grouping, inhibition, repeat interval, silences).

Plain Python; no Dagster.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

__all__ = ["Alert", "RulesError", "Route", "RoutingRules", "load_rules", "parse_rules"]

SOURCES = ("feed", "batch_run", "asset_check", "anomaly", "dagster_run")
SEVERITIES = ("critical", "warning")
LABELS = ("source", "severity", "asset_class", "feed", "feeds", "job", "team", "asset")


class RulesError(ValueError):
    """The routing rules file is invalid; the message names the entry."""


def _iso(t: pd.Timestamp | None) -> str | None:
    if t is None or pd.isna(t):
        return None
    ts = pd.Timestamp(t)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Alert:
    """A symptom (or an unexplained anomaly) as of its data time: firing, or resolved at ``resolved_at``."""

    dedup_key: str  # the same problem always has the same key (feed:cme-mdp:stale:2026-11-25T20:00Z)
    source: str  # feed | batch_run | asset_check | anomaly | dagster_run
    severity: str  # critical (pages) | warning
    summary: str
    at: str  # ISO time of the symptom in the data (not the wall clock)
    labels: dict[str, str] = field(default_factory=dict)
    resolved_at: str | None = None
    incident_id: str | None = None
    link: str = ""  # the Dagster UI page to open
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return "al-" + hashlib.sha256(self.dedup_key.encode()).hexdigest()[:10]

    @property
    def page(self) -> bool:
        return self.severity == "critical"

    def label(self, name: str) -> str:
        if name == "source":
            return self.source
        if name == "severity":
            return self.severity
        return str(self.labels.get(name, ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dedup_key": self.dedup_key,
            "source": self.source,
            "severity": self.severity,
            "page": self.page,
            "summary": self.summary,
            "at": self.at,
            "resolved_at": self.resolved_at,
            "incident_id": self.incident_id,
            "labels": dict(self.labels),
            "link": self.link,
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alert:
        return cls(
            dedup_key=d["dedup_key"],
            source=d["source"],
            severity=d["severity"],
            summary=d["summary"],
            at=d["at"],
            labels=dict(d.get("labels") or {}),
            resolved_at=d.get("resolved_at"),
            incident_id=d.get("incident_id"),
            link=d.get("link", ""),
            details=dict(d.get("details") or {}),
        )


def _matches(alert: Alert, match: dict[str, tuple[str, ...]]) -> bool:
    for name, values in match.items():
        have = alert.label(name)
        if name == "feed" and not have:  # a job's alert stands for each feed it needs
            if not set(alert.label("feeds").split(",")) & set(values):
                return False
        elif have not in values:
            return False
    return True


@dataclass(frozen=True)
class Route:
    match: dict[str, tuple[str, ...]]
    channels: tuple[str, ...]
    group_by: tuple[str, ...]
    repeat_interval: pd.Timedelta
    cont: bool = False


@dataclass(frozen=True)
class Inhibit:
    source_match: dict[str, tuple[str, ...]]
    target_match: dict[str, tuple[str, ...]]
    equal: tuple[str, ...]


@dataclass(frozen=True)
class Silence:
    match: dict[str, tuple[str, ...]]
    starts: pd.Timestamp | None
    ends: pd.Timestamp
    reason: str


@dataclass(frozen=True)
class RoutingRules:
    default: Route
    routes: tuple[Route, ...]
    inhibit: tuple[Inhibit, ...]
    silences: tuple[Silence, ...]
    source: str = ""

    def routes_for(self, alert: Alert) -> list[Route]:
        out = []
        for r in self.routes:
            if _matches(alert, r.match):
                out.append(r)
                if not r.cont:
                    break
        return out or [self.default]

    def silenced(self, alert: Alert, at: pd.Timestamp) -> Silence | None:
        for s in self.silences:
            if (s.starts is None or s.starts <= at) and at < s.ends and _matches(alert, s.match):
                return s
        return None

    def inhibited_by(self, alert: Alert, firing: list[Alert]) -> Alert | None:
        """A firing alert that mutes ``alert`` under an inhibit rule, or None."""
        for rule in self.inhibit:
            if not _matches(alert, rule.target_match):
                continue
            for src in firing:
                if src.dedup_key == alert.dedup_key or not _matches(src, rule.source_match):
                    continue
                if all(_equal(src, alert, name) for name in rule.equal):
                    return src
        return None


def _equal(src: Alert, target: Alert, name: str) -> bool:
    value = src.label(name)
    if not value:
        return False
    if name == "feed":
        return value == target.label("feed") or value in target.label("feeds").split(",")
    return value == target.label(name)


def _duration(text: Any, where: str) -> pd.Timedelta:
    try:
        d = pd.Timedelta(str(text))
    except ValueError:
        raise RulesError(f"{where}: {text!r} is not a duration (30m, 4h, 1d)") from None
    if d <= pd.Timedelta(0):
        raise RulesError(f"{where}: must be positive")
    return d


def _match(raw: Any, where: str) -> dict[str, tuple[str, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RulesError(f"{where}: must be a mapping of label -> list of values")
    out = {}
    for k, v in raw.items():
        if k not in LABELS:
            raise RulesError(f"{where}: unknown label {k!r}; use {', '.join(LABELS)}")
        vals = v if isinstance(v, list) else [v]
        out[str(k)] = tuple(str(x) for x in vals)
    return out


def _time(raw: Any, where: str) -> pd.Timestamp:
    try:
        t = pd.Timestamp(raw)
    except (ValueError, TypeError):
        raise RulesError(f"{where}: {raw!r} is not an ISO-8601 time") from None
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _route(raw: dict[str, Any], default: Route | None, where: str, known_channels: tuple[str, ...]) -> Route:
    if not isinstance(raw, dict):
        raise RulesError(f"{where}: must be a mapping")
    channels = tuple(raw.get("channels") or (default.channels if default else ("outbox",)))
    bad = [c for c in channels if c not in known_channels]
    if bad:
        raise RulesError(f"{where}.channels: unknown {bad}; use {', '.join(known_channels)}")
    group_by = tuple(raw.get("group_by") or (default.group_by if default else ("source",)))
    for g in group_by:
        if g not in LABELS:
            raise RulesError(f"{where}.group_by: unknown label {g!r}")
    repeat = raw.get("repeat_interval")
    return Route(
        match=_match(raw.get("match"), f"{where}.match"),
        channels=channels,
        group_by=group_by,
        repeat_interval=_duration(repeat, f"{where}.repeat_interval") if repeat else (default.repeat_interval if default else pd.Timedelta("4h")),
        cont=bool(raw.get("continue", False)),
    )


def parse_rules(doc: Any, source: str = "") -> RoutingRules:
    from cms_dagster.settings import ALERT_CHANNELS

    if not isinstance(doc, dict):
        raise RulesError(f"{source or 'rules'}: top level must be a mapping (defaults, routes, inhibit, silences)")
    default = _route(doc.get("defaults") or {}, None, "defaults", ALERT_CHANNELS)
    routes = tuple(_route(r, default, f"routes[{i}]", ALERT_CHANNELS) for i, r in enumerate(doc.get("routes") or []))
    inhibit = []
    for i, r in enumerate(doc.get("inhibit") or []):
        if not isinstance(r, dict) or "source_match" not in r or "target_match" not in r:
            raise RulesError(f"inhibit[{i}]: needs source_match and target_match (and equal)")
        equal = tuple(r.get("equal") or ())
        for e in equal:
            if e not in LABELS:
                raise RulesError(f"inhibit[{i}].equal: unknown label {e!r}")
        inhibit.append(Inhibit(_match(r["source_match"], f"inhibit[{i}].source_match"), _match(r["target_match"], f"inhibit[{i}].target_match"), equal))
    silences = []
    for i, s in enumerate(doc.get("silences") or []):
        if not isinstance(s, dict) or "ends" not in s or "match" not in s:
            raise RulesError(f"silences[{i}]: needs match and ends (and starts, reason)")
        silences.append(
            Silence(
                _match(s["match"], f"silences[{i}].match"),
                _time(s["starts"], f"silences[{i}].starts") if s.get("starts") else None,
                _time(s["ends"], f"silences[{i}].ends"),
                str(s.get("reason", "")),
            )
        )
    return RoutingRules(default, routes, tuple(inhibit), tuple(silences), source)


def default_rules_path() -> Path:
    return Path(str(resources.files("cms_dagster.alerts") / "alert_rules.yaml"))


def load_rules(path: str | Path | None = None) -> RoutingRules:
    """The routing rules from ``path`` (CMS_ALERT_RULES_FILE) or the packaged alert_rules.yaml."""
    p = Path(path) if path else default_rules_path()
    try:
        doc = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise RulesError(f"{p}: no such file (set CMS_ALERT_RULES_FILE to your rules YAML)") from None
    except yaml.YAMLError as e:
        raise RulesError(f"{p}: not valid YAML: {str(e).splitlines()[0]}") from None
    return parse_rules(doc, str(p))


__all__ += ["Inhibit", "Silence", "default_rules_path", "_iso"]
