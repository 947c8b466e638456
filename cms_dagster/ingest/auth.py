"""Bearer API keys per team, and which services each team may write.

Keys come from ``CMS_INGEST_API_KEYS`` (``team:key,team:key``) and/or a YAML keys file. The file maps a
team to one key, a list of keys (two while one is being rotated), or a mapping with its keys and the
services it owns (``service.name`` globs, :func:`fnmatch.fnmatchcase`)::

    markets-batch:
      keys: [3f0c...e1]
      services: [pricing-batch, "batch-*"]
    fx-feeds: [old-key, new-key]        # no services declared

Ownership (docs/security.md): a team that declares ``services`` may write only those; a team that
declares none (the short forms, and every team of ``CMS_INGEST_API_KEYS``) may write only services that
no team claims. So once a team declares its services, no other key can write them.
"""

from __future__ import annotations

import fnmatch
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIN_KEY_LENGTH = 8


class KeyConfigError(ValueError):
    """The API key configuration is unusable; the message says how to fix it."""


def parse_keys_env(text: str) -> dict[str, str]:
    """``team:key,team:key`` as {key: team}. Errors name the item by position, never by content."""
    out: dict[str, str] = {}
    items = [x.strip() for x in (text or "").split(",") if x.strip()]
    for n, item in enumerate(items, start=1):
        team, sep, key = item.partition(":")
        if not sep or not team.strip() or not key.strip():
            raise KeyConfigError(f"CMS_INGEST_API_KEYS item {n} of {len(items)} is not 'team:key': list keys as team:key,team:key")
        _add(out, team.strip(), key.strip())
    return out


def parse_keys_yaml(text: str, source: str = "keys file") -> dict[str, str]:
    """A YAML mapping ``team: key`` (or ``team: [key, ...]``, or ``team: {keys: [...], services: [...]}``)
    as {key: team}."""
    return parse_access_yaml(text, source)[0]


def parse_access_yaml(text: str, source: str = "keys file") -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """The keys file as ({key: team}, {team: service globs}); teams without ``services`` are left out."""
    import yaml

    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        # the parser's message quotes the offending line, which may hold a key: say where, not what
        raise KeyConfigError(f"{source} is not valid YAML: write one 'team: key' per line") from None
    if not isinstance(doc, Mapping):
        raise KeyConfigError(f"{source} must be a YAML mapping of team to key ('team: key' per line)")
    out: dict[str, str] = {}
    services: dict[str, tuple[str, ...]] = {}
    for team, entry in doc.items():
        keys: Any = entry
        if isinstance(entry, Mapping):
            unknown = sorted(str(k) for k in entry if k not in ("key", "keys", "services"))
            if unknown:
                raise KeyConfigError(f"{source}: team {team!r} has unknown field(s) {', '.join(unknown)}: use keys and services")
            keys = entry.get("keys", entry.get("key"))
            if keys is None:
                raise KeyConfigError(f"{source}: team {team!r} has no keys: add 'keys: [KEY]'")
            globs = entry.get("services")
            if globs is not None:
                if isinstance(globs, str):
                    globs = [globs]
                if not isinstance(globs, list) or not globs or not all(isinstance(g, str) and g.strip() for g in globs):
                    raise KeyConfigError(
                        f"{source}: team {team!r} services must be a list of service.name globs, e.g. [pricing-batch, 'batch-*']"
                    )
                services[str(team)] = tuple(g.strip() for g in globs)
        for key in keys if isinstance(keys, list) else [keys]:
            if not isinstance(key, (str, int)) or not str(key).strip():
                raise KeyConfigError(f"{source}: team {team!r} has an empty or non-text key")
            _add(out, str(team), str(key).strip())
    return out, services


def _add(out: dict[str, str], team: str, key: str) -> None:
    if len(key) < MIN_KEY_LENGTH:
        raise KeyConfigError(f"API key of team {team!r} is shorter than {MIN_KEY_LENGTH} characters: use a long random key")
    if key in out and out[key] != team:
        raise KeyConfigError(f"one API key is given to two teams ({out[key]!r} and {team!r}): give each team its own key")
    out[key] = team


def load_keys(env_value: str = "", file_path: str = "") -> dict[str, str]:
    """Keys from the environment value and/or the YAML file, merged: {key: team}."""
    return load_access(env_value, file_path)[0]


def load_access(env_value: str = "", file_path: str = "") -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """Keys ({key: team}) from the environment value and/or the YAML file, and the services each team of
    the file declares ({team: globs})."""
    keys = parse_keys_env(env_value)
    services: dict[str, tuple[str, ...]] = {}
    if file_path:
        p = Path(file_path).expanduser()
        if not p.is_file():
            raise KeyConfigError(f"CMS_INGEST_API_KEYS_FILE={file_path} does not exist: create it ('team: key' per line)")
        file_keys, services = parse_access_yaml(p.read_text(), str(p))
        for key, team in file_keys.items():
            _add(keys, team, key)
    return keys, services


@dataclass
class Ownership:
    """Which team may write which ``service.name`` (see the module docstring)."""

    services: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # {team: globs}
    _cache: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)

    def owns(self, team: str, service: str) -> bool:
        hit = self._cache.get((team, service))
        if hit is None:
            globs = self.services.get(team)
            if globs is not None:
                hit = any(fnmatch.fnmatchcase(service, g) for g in globs)
            else:
                hit = not any(fnmatch.fnmatchcase(service, g) for gs in self.services.values() for g in gs)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[(team, service)] = hit
        return hit


class ApiKeys:
    """Authenticates ``Authorization: Bearer <key>`` headers (constant-time comparison)."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self._keys = [(k.encode(), t) for k, t in keys.items()]

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def teams(self) -> list[str]:
        return sorted({t for _, t in self._keys})

    def team_for(self, authorization: str | None) -> str | None:
        """The team a header authenticates, or None."""
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        tok = token.strip().encode()
        found = None
        for key, team in self._keys:
            if hmac.compare_digest(key, tok):
                found = team
        return found
