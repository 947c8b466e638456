"""Bearer API keys per team: ``CMS_INGEST_API_KEYS`` (``team:key,team:key``) and/or a YAML keys file.

The YAML file maps a team to one key or a list of keys (two keys while one is being rotated)::

    markets-batch: 3f0c...e1
    fx-feeds: [old-key, new-key]
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from pathlib import Path

MIN_KEY_LENGTH = 8


class KeyConfigError(ValueError):
    """The API key configuration is unusable; the message says how to fix it."""


def parse_keys_env(text: str) -> dict[str, str]:
    """``team:key,team:key`` as {key: team}."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        team, sep, key = item.partition(":")
        if not sep or not team.strip() or not key.strip():
            raise KeyConfigError(f"CMS_INGEST_API_KEYS item {team.strip()!r}... is not 'team:key': list keys as team:key,team:key")
        _add(out, team.strip(), key.strip())
    return out


def parse_keys_yaml(text: str, source: str = "keys file") -> dict[str, str]:
    """A YAML mapping ``team: key`` (or ``team: [key, ...]``) as {key: team}."""
    import yaml

    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise KeyConfigError(f"{source} is not valid YAML ({e}): write one 'team: key' per line") from None
    if not isinstance(doc, Mapping):
        raise KeyConfigError(f"{source} must be a YAML mapping of team to key ('team: key' per line)")
    out: dict[str, str] = {}
    for team, keys in doc.items():
        for key in keys if isinstance(keys, list) else [keys]:
            if not isinstance(key, (str, int)) or not str(key).strip():
                raise KeyConfigError(f"{source}: team {team!r} has an empty or non-text key")
            _add(out, str(team), str(key).strip())
    return out


def _add(out: dict[str, str], team: str, key: str) -> None:
    if len(key) < MIN_KEY_LENGTH:
        raise KeyConfigError(f"API key of team {team!r} is shorter than {MIN_KEY_LENGTH} characters: use a long random key")
    if key in out and out[key] != team:
        raise KeyConfigError(f"one API key is given to two teams ({out[key]!r} and {team!r}): give each team its own key")
    out[key] = team


def load_keys(env_value: str = "", file_path: str = "") -> dict[str, str]:
    """Keys from the environment value and/or the YAML file, merged: {key: team}."""
    keys = parse_keys_env(env_value)
    if file_path:
        p = Path(file_path).expanduser()
        if not p.is_file():
            raise KeyConfigError(f"CMS_INGEST_API_KEYS_FILE={file_path} does not exist: create it ('team: key' per line)")
        for key, team in parse_keys_yaml(p.read_text(), str(p)).items():
            _add(keys, team, key)
    return keys


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
