"""Client configuration: explicit options > environment variables > config-file profile > defaults.

The environment variables are the OpenTelemetry ones (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME``, ...) plus ``CMS_*`` for what OTel has no name for.
A config file (JSON, or TOML on Python 3.11+) holds profiles such as ``dev``, ``staging`` and ``prod``::

    {"default_profile": "dev",
     "profiles": {"dev":  {"endpoint": "http://127.0.0.1:4318", "service_name": "pricing-batch"},
                  "prod": {"endpoint": "https://cms.example.internal:4318",
                           "headers": {"authorization": "Bearer KEY"}, "spool_dir": "/var/spool/cms-sdk"}}}
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Dict, Mapping, Optional
from urllib.parse import unquote


class ConfigError(ValueError):
    """The configuration cannot be used; raised when the client is built (the only place the SDK raises)."""


@dataclass(frozen=True)
class Config:
    endpoint: str = "http://127.0.0.1:4318"
    metrics_endpoint: str = ""
    headers: Dict[str, str] = field(default_factory=dict, repr=False)
    service_name: str = "unknown_service"
    service_version: str = ""
    resource_attributes: Dict[str, Any] = field(default_factory=dict)
    environment: str = "dev"
    timeout_ms: int = 10000
    compression: str = "none"
    spool_dir: str = ""  # "" = default under the temp dir; "off" = no spool
    spool_max_bytes: int = 64 << 20
    max_queue_size: int = 2048
    max_batch_size: int = 512
    export_interval_ms: int = 1000
    max_retries: int = 5
    initial_backoff_ms: int = 500
    max_backoff_ms: int = 30000
    self_metrics: bool = False
    profile: str = ""

    @property
    def url(self) -> str:
        """The full metrics URL: ``metrics_endpoint`` as is, else ``endpoint`` + ``/v1/metrics``."""
        if self.metrics_endpoint:
            return self.metrics_endpoint
        return self.endpoint.rstrip("/") + "/v1/metrics"

    @property
    def spool_path(self) -> Optional[Path]:
        if self.spool_dir.lower() == "off":
            return None
        if self.spool_dir:
            return Path(self.spool_dir).expanduser()
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.service_name) or "unknown_service"
        return Path(tempfile.gettempdir()) / "cms-sdk-spool" / safe


_INT_KEYS = {
    "timeout_ms", "spool_max_bytes", "max_queue_size", "max_batch_size", "export_interval_ms",
    "max_retries", "initial_backoff_ms", "max_backoff_ms",
}
_FIELDS = {f.name for f in fields(Config)}
# environment variable -> config key (headers, resource attributes and booleans parsed separately)
_ENV = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": "endpoint",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "metrics_endpoint",
    "OTEL_SERVICE_NAME": "service_name",
    "CMS_ENVIRONMENT": "environment",
    "OTEL_EXPORTER_OTLP_TIMEOUT": "timeout_ms",
    "OTEL_EXPORTER_OTLP_COMPRESSION": "compression",
    "CMS_SPOOL_DIR": "spool_dir",
    "CMS_SPOOL_MAX_BYTES": "spool_max_bytes",
    "CMS_MAX_QUEUE_SIZE": "max_queue_size",
    "CMS_MAX_BATCH_SIZE": "max_batch_size",
    "CMS_EXPORT_INTERVAL_MS": "export_interval_ms",
    "CMS_MAX_RETRIES": "max_retries",
    "CMS_INITIAL_BACKOFF_MS": "initial_backoff_ms",
    "CMS_MAX_BACKOFF_MS": "max_backoff_ms",
    "CMS_SDK_SELF_METRICS": "self_metrics",
}


def parse_kv_list(text: str, what: str) -> Dict[str, str]:
    """``k=v,k2=v2`` (values URL-decoded, as OTEL_EXPORTER_OTLP_HEADERS and OTEL_RESOURCE_ATTRIBUTES use)."""
    out: Dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise ConfigError(f"{what} item {item.strip()!r} is not key=value: write k=v,k2=v2")
        out[unquote(k.strip())] = unquote(v.strip())
    return out


def _bool(v: Any, key: str) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{key}={v!r} is not a boolean: use true or false")


def _coerce(key: str, v: Any) -> Any:
    if key in _INT_KEYS:
        try:
            n = int(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={v!r} is not an integer") from None
        if n < 0 or (n == 0 and key in ("max_queue_size", "max_batch_size", "export_interval_ms")):
            raise ConfigError(f"{key}={v!r} must be positive")
        return n
    if key == "self_metrics":
        return _bool(v, key)
    if key == "compression":
        c = str(v).strip().lower()
        if c not in ("gzip", "none", ""):
            raise ConfigError(f"compression={v!r}: use gzip or none")
        return c or "none"
    if key in ("headers", "resource_attributes"):
        if isinstance(v, str):
            return parse_kv_list(v, key)
        if not isinstance(v, Mapping):
            raise ConfigError(f"{key} must be an object of name to value")
        return {str(k): (str(x) if key == "headers" else x) for k, x in v.items()}
    return "" if v is None else str(v)


def load_file(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist: fix CMS_CONFIG_FILE / config_file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib  # Python 3.11+
            except ImportError:
                raise ConfigError(f"{path}: TOML config files need Python 3.11+; use JSON") from None
            doc = tomllib.loads(text)
        else:
            doc = json.loads(text)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"config file {path} cannot be parsed ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("profiles", {}), dict):
        raise ConfigError(f"config file {path} must be an object with a 'profiles' object")
    return doc


def resolve(
    explicit: Optional[Mapping[str, Any]] = None,
    environ: Optional[Mapping[str, str]] = None,
    config_file: Optional[str] = None,
    profile: Optional[str] = None,
) -> Config:
    """The effective :class:`Config`. ``environ=None`` reads ``os.environ``; pass ``{}`` to ignore it."""
    env = dict(os.environ if environ is None else environ)
    explicit = {k: v for k, v in (explicit or {}).items() if v is not None}
    unknown = set(explicit) - _FIELDS
    if unknown:
        raise ConfigError(f"unknown option(s) {sorted(unknown)}: see cms_sdk.Config for the names")

    # 1. the config file's profile
    values: Dict[str, Any] = {}
    file_name = config_file or env.get("CMS_CONFIG_FILE", "")
    chosen = profile or env.get("CMS_PROFILE", "")
    if file_name:
        doc = load_file(Path(file_name).expanduser())
        profiles = doc.get("profiles") or {}
        if not chosen:
            chosen = str(doc.get("default_profile") or "")
        if not chosen and env.get("CMS_ENVIRONMENT", "") in profiles:
            chosen = env["CMS_ENVIRONMENT"]
        if chosen:
            if chosen not in profiles:
                raise ConfigError(
                    f"profile {chosen!r} is not in {file_name} (profiles: {', '.join(sorted(profiles)) or 'none'})"
                )
            prof = profiles[chosen] or {}
            bad = set(prof) - _FIELDS
            if bad:
                raise ConfigError(f"profile {chosen!r} in {file_name} has unknown key(s) {sorted(bad)}")
            values.update({k: _coerce(k, v) for k, v in prof.items()})
            values.setdefault("environment", chosen)
            values["profile"] = chosen
    elif chosen:
        raise ConfigError(f"profile {chosen!r} asked for but no config file given (CMS_CONFIG_FILE / config_file)")

    # 2. environment variables
    for var, key in _ENV.items():
        if env.get(var, "").strip():
            values[key] = _coerce(key, env[var].strip())
    headers = dict(values.get("headers") or {})
    headers.update(parse_kv_list(env.get("OTEL_EXPORTER_OTLP_HEADERS", ""), "OTEL_EXPORTER_OTLP_HEADERS"))
    headers.update(parse_kv_list(env.get("OTEL_EXPORTER_OTLP_METRICS_HEADERS", ""), "OTEL_EXPORTER_OTLP_METRICS_HEADERS"))
    if headers:
        values["headers"] = headers
    res_env = parse_kv_list(env.get("OTEL_RESOURCE_ATTRIBUTES", ""), "OTEL_RESOURCE_ATTRIBUTES")
    if res_env:
        values["resource_attributes"] = {**(values.get("resource_attributes") or {}), **res_env}

    # 3. explicit options
    for k, v in explicit.items():
        if k in ("headers", "resource_attributes"):
            values[k] = {**(values.get(k) or {}), **_coerce(k, v)}
        else:
            values[k] = _coerce(k, v)
    return replace(Config(), **values)
