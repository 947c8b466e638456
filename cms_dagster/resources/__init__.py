"""Dagster resources: one thin ``ConfigurableResource`` per adapter, each building the plain adapter from a
:class:`cms_dagster.settings.Settings` at run time (never at import).

======================  ==================  =================================================================
resource key            class               adapter
======================  ==================  =================================================================
``lake``                LakeResource        :class:`cms_dagster.lake.Lake` (raw, processed, archive zones)
``warehouse``           WarehouseResource   :class:`cms_dagster.warehouse.client.Warehouse` (DuckDB/Snowflake)
``llm``                 LlmResource         :class:`cms_dagster.llm.Llm` (resources/llm.py)
``alerts``              AlertsResource      the routing rules and alert channels (resources/alerts.py)
======================  ==================  =================================================================

A field that is set in the environment is bound with ``dg.EnvVar`` by :func:`build_resources`: read at run
time, never shown in the UI. A field left unset falls back to the environment through ``settings.load``,
then to the embedded default (docs/configuration.md). ``settings()`` gives the whole Settings for what an
asset needs beyond its adapter (collection targets, the ontology file).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import dagster as dg

from cms_dagster import settings as settings_mod
from cms_dagster.lake import Lake
from cms_dagster.warehouse.client import Warehouse


class SettingsResource(dg.ConfigurableResource):
    """A resource whose fields override settings variables (``FIELDS``: field -> variable)."""

    FIELDS: ClassVar[dict[str, str]] = {}

    def settings(self) -> settings_mod.Settings:
        return settings_mod.load(overrides={var: getattr(self, f) for f, var in self.FIELDS.items()})


class LakeResource(SettingsResource):
    """The lake: raw, processed and archive zones, each a local directory or an S3 prefix."""

    FIELDS: ClassVar[dict[str, str]] = {
        "cms_home": "CMS_HOME",
        "lake_url": "CMS_LAKE_URL",
        "raw_url": "CMS_RAW_URL",
        "processed_url": "CMS_PROCESSED_URL",
        "archive_url": "CMS_ARCHIVE_URL",
    }

    cms_home: str | None = None
    lake_url: str | None = None
    raw_url: str | None = None
    processed_url: str | None = None
    archive_url: str | None = None

    def lake(self) -> Lake:
        return Lake.from_settings(self.settings())


class WarehouseResource(SettingsResource):
    """The warehouse: DuckDB (embedded) or Snowflake. Snowflake's credentials stay in ``SNOWFLAKE_*``."""

    FIELDS: ClassVar[dict[str, str]] = {
        "cms_home": "CMS_HOME",
        "warehouse": "CMS_WAREHOUSE",
        "duckdb_path": "CMS_DUCKDB_PATH",
        "dbt_target": "DBT_TARGET",
    }

    cms_home: str | None = None
    warehouse: str | None = None
    duckdb_path: str | None = None
    dbt_target: str | None = None

    def client(self) -> Warehouse:
        return Warehouse(self.settings())

    def target(self) -> str:
        """The dbt target of these settings (``DBT_TARGET``, else ``CMS_WAREHOUSE``)."""
        from cms_dagster.warehouse import dbt as warehouse_dbt

        return warehouse_dbt.dbt_target(self.settings())

    def dbt_vars(self) -> dict[str, str]:
        """dbt vars the profile reads (``cms_duckdb_path``): the DuckDB file of these settings."""
        from cms_dagster.warehouse import dbt as warehouse_dbt

        return warehouse_dbt.profile_vars(self.settings())


def build_resources(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """Resources for the code location. Variables that are set (in ``environ``, default this process's
    environment) are bound with ``dg.EnvVar`` so that they are read at run time and never shown in the UI;
    unset ones keep the embedded defaults."""
    from cms_dagster.resources.alerts import ALERT_FIELDS, AlertsResource
    from cms_dagster.resources.llm import LLM_FIELDS, LlmResource

    def is_set(var: str) -> bool:
        return settings_mod.is_set(var) if environ is None else bool((environ.get(var) or "").strip())

    def bound(fields: Mapping[str, str]) -> dict[str, dg.EnvVar]:
        return {f: dg.EnvVar(var) for f, var in fields.items() if is_set(var)}

    return {
        "lake": LakeResource(**bound(LakeResource.FIELDS)),
        "warehouse": WarehouseResource(**bound(WarehouseResource.FIELDS)),
        "llm": LlmResource(**bound(LLM_FIELDS)),
        "alerts": AlertsResource(**bound(ALERT_FIELDS)),
    }
