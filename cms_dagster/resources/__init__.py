"""Dagster resources: thin, configurable views over cms_dagster.settings (read at run time, not import)."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from cms_dagster import settings as settings_mod
from cms_dagster.lake import Lake

# resource field -> environment variable it overrides
_FIELDS = {
    "cms_home": "CMS_HOME",
    "lake_url": "CMS_LAKE_URL",
    "raw_url": "CMS_RAW_URL",
    "processed_url": "CMS_PROCESSED_URL",
    "archive_url": "CMS_ARCHIVE_URL",
    "warehouse": "CMS_WAREHOUSE",
    "duckdb_path": "CMS_DUCKDB_PATH",
    "llm": "CMS_LLM",
    "llm_model": "CMS_LLM_MODEL",
    "alert_channels": "CMS_ALERT_CHANNELS",
    "environment": "CMS_ENVIRONMENT",
    "domain_file": "CMS_DOMAIN_FILE",
}


class CmsResource(dg.ConfigurableResource):
    """Where CMS keeps its data and which engines it uses. Unset fields fall back to the environment
    (docs/configuration.md), then to the embedded defaults under CMS_HOME."""

    cms_home: str | None = None
    lake_url: str | None = None
    raw_url: str | None = None
    processed_url: str | None = None
    archive_url: str | None = None
    warehouse: str | None = None
    duckdb_path: str | None = None
    llm: str | None = None
    llm_model: str | None = None
    alert_channels: str | None = None
    environment: str | None = None
    domain_file: str | None = None

    def settings(self) -> settings_mod.Settings:
        return settings_mod.load(overrides={var: getattr(self, f) for f, var in _FIELDS.items()})

    def lake(self) -> Lake:
        return Lake.from_settings(self.settings())


def build_resources(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """Resources for the code location. Variables that are set are bound with ``dg.EnvVar`` so that
    they are read at run time and never shown in the UI; unset ones keep the embedded defaults."""
    def is_set(var: str) -> bool:
        return settings_mod.is_set(var) if environ is None else bool((environ.get(var) or "").strip())

    from cms_dagster.resources.alerts import ALERT_FIELDS, AlertsResource
    from cms_dagster.resources.llm import LLM_FIELDS, LlmResource

    kwargs = {f: dg.EnvVar(var) for f, var in _FIELDS.items() if is_set(var)}
    llm = {f: dg.EnvVar(var) for f, var in LLM_FIELDS.items() if is_set(var)}
    alerts = {f: dg.EnvVar(var) for f, var in ALERT_FIELDS.items() if is_set(var)}
    return {"cms": CmsResource(**kwargs), "llm": LlmResource(**llm), "alerts": AlertsResource(**alerts)}
