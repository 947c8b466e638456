"""The dbt project as Dagster assets, in one lineage with the loading assets.

Three groups of dbt nodes, chosen by the dbt tags set in dbt_project.yml:

* reference (tag ``reference``): the ontology seeds, their staging views and the dimensions built from them
  alone, unpartitioned: they change when the ontology does (``cms domain export-seeds``).
* events (tag ``events``): everything that reads ``raw.metric_points`` (the source maps to the loading asset
  ``["warehouse", "metric_points"]``), partitioned by the same UTC hours. A partition's time window goes
  to the dbt process as ``CMS_DBT_WINDOW_START`` / ``CMS_DBT_WINDOW_END`` (the macros read them at run time;
  as ``--vars`` a new window would make dbt re-parse the project), so the incremental models recompute only
  that window (a single-run backfill passes the whole range).
* observed dimensions (tag ``dimension`` but not ``reference``: ``dim_resource``), unpartitioned and
  rebuilt whole after the facts, from the resources observed in any hour.

Every dbt test is an asset check on its model (source tests on the loading asset) and runs in the same
dbt build as the model; each model's materialization carries its column schema and (tables) row count.
Every node gets its automation condition from the translator (cms_dagster/defs/automation.py), so the
marts keep themselves current as hours of points are loaded. Keys are ``["dbt", <node name>]``; groups
follow the dbt folders (staging, intermediate, marts) and seeds.

The project is a dagster-dbt ``DbtProject``: ``dagster dev`` parses it on load (``prepare_if_dev``);
elsewhere (tests, CI, deployments) ``cms dbt prepare`` writes ``target/manifest.json`` first. Each run
hands dbt its target and, on DuckDB, the database file (the profile's ``cms_duckdb_path`` var) from the
warehouse resource; the partition window is the one variable set in the process environment, while the
dbt process starts, one window at a time per process (``settings.dbt_window``). After a DuckDB build the readers' snapshot is published
(cms_dagster/warehouse/snapshot.py).
"""

import datetime
import functools
import importlib.metadata
import json
import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)
from packaging import version

from cms_dagster import settings as settings_mod
from cms_dagster.defs import automation
from cms_dagster.defs.partitions import hourly_partitions
from cms_dagster.infra.dagster_instance import DBT_POOL
from cms_dagster.resources import WarehouseResource
from cms_dagster.warehouse import dbt as warehouse_dbt
from cms_dagster.warehouse import snapshot

SOURCE_KEY = dg.AssetKey(["warehouse", "metric_points"])
FOLDER_GROUPS = ("staging", "intermediate", "marts")
REFERENCE = "tag:reference"
EVENTS = "tag:events"
DIMENSIONS = "tag:dimension"
# reference builds run only the tests all of whose models are reference data (a relationships test from a
# fact to a dimension runs with the fact); the events build leaves the test that checks the observed
# dimension against the facts to that dimension's own build
ONLY_OWN_TESTS = ("--indirect-selection", "cautious")
NOT_DIMENSION_TESTS = ("--exclude", "test_name:contains_every")
# dbt unit tests check SQL logic against fixed inputs: they run in CI (`dbt build`), not on every partition
NO_UNIT_TESTS = ("--exclude-resource-type", "unit_test")

_PROJECT_DIR = warehouse_dbt.dbt_project_dir(settings_mod.load())
DBT_PROJECT = DbtProject(project_dir=_PROJECT_DIR, profiles_dir=_PROJECT_DIR)
DBT_PROJECT.prepare_if_dev()  # under `dagster dev` (dbt on PATH: `cms demo` puts the environment's bin there)
MANIFEST = DBT_PROJECT.manifest_path
if not MANIFEST.exists():
    raise FileNotFoundError(
        f"the dbt manifest {MANIFEST} is missing, so the dbt assets cannot be loaded: "
        "run `cms dbt prepare` (or `dbt parse` in dbt_project/) and start Dagster again"
    )


class CmsDbtTranslator(DagsterDbtTranslator):
    """Keys ``["dbt", name]``, the source as the loading asset, groups from the dbt folders."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            if dbt_resource_props["name"] == "metric_points":
                return SOURCE_KEY
            return dg.AssetKey(["warehouse", dbt_resource_props["name"]])
        return dg.AssetKey(["dbt", dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "seed":
            return "seeds"
        fqn = dbt_resource_props.get("fqn") or []
        folder = fqn[1] if len(fqn) > 2 else ""
        return folder if folder in FOLDER_GROUPS else "marts"

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition | None:
        if dbt_resource_props["resource_type"] == "source":
            return None  # the loading asset, defined (and scheduled) elsewhere
        tags = dbt_resource_props.get("tags") or []
        return automation.HOURLY if "events" in tags else automation.UNPARTITIONED


TRANSLATOR = CmsDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_source_tests_as_checks=True))


def window_vars(window: dg.TimeWindow | None) -> dict[str, str]:
    """A partition's time window as dbt vars (ISO-8601 UTC); empty for an unpartitioned run."""
    if window is None:
        return {}
    fmt = "%Y-%m-%dT%H:%M:%S"
    utc = datetime.timezone.utc
    return {"window_start": window.start.astimezone(utc).strftime(fmt), "window_end": window.end.astimezone(utc).strftime(fmt)}


def _dbt_args(args: list[str], warehouse: WarehouseResource) -> list[str]:
    """``dbt <args>`` against the resource's warehouse: its target, and on DuckDB its database file as the
    profile's ``cms_duckdb_path`` var. The same vars in every build, and in ``cms dbt prepare``
    (:func:`cms_dagster.warehouse.dbt.prepare`), so that each build keeps the prepared parse."""
    all_vars = warehouse.dbt_vars()
    return [*args, "--target", warehouse.target()] + (["--vars", json.dumps(all_vars)] if all_vars else [])


@dbt_assets(
    manifest=MANIFEST,
    project=DBT_PROJECT,
    select=REFERENCE,
    name="dbt_reference",
    dagster_dbt_translator=TRANSLATOR,
    pool=DBT_POOL,
)
def dbt_reference_assets(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    """The ontology seeds, their staging views and the dimensions built from them alone."""
    args = _dbt_args(["build", *NO_UNIT_TESTS, *ONLY_OWN_TESTS], warehouse)
    yield from _stream(dbt.cli(args, context=context), warehouse)


def _stream(invocation: Any, warehouse: WarehouseResource) -> Iterator[Any]:
    """dbt's events, each model's and seed's with its column schema and (tables) row count attached.

    Read after dbt has exited, through the warehouse adapter (dagster-dbt's own fetch_* helpers open the
    embedded DuckDB file in this process while dbt still holds it); on DuckDB the readers' snapshot is
    published first."""
    events = list(invocation.stream())
    nodes = invocation.manifest["nodes"]
    s = warehouse.settings()
    if s.warehouse == "duckdb":  # readers (dashboard, cms ask, sensors) see the build without waiting for dbt's lock
        snapshot.publish_file(s.duckdb_path)
    wh = warehouse.client()
    for event in events:
        node = nodes.get(str(event.metadata.get("unique_id").value)) if isinstance(event, dg.Output) and event.metadata.get("unique_id") else None
        if node and node["resource_type"] in ("model", "seed"):
            is_view = node["config"].get("materialized") == "view"
            columns, rows = warehouse_dbt.relation_facts(
                wh.query, node["schema"], node.get("alias") or node["name"], count_rows=not is_view
            )
            facts = {"dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(n, t) for n, t in columns])}
            if rows is not None:
                facts["dagster/row_count"] = dg.MetadataValue.int(rows)
            event = event.with_metadata({**event.metadata, **facts})
        yield event


@dbt_assets(
    manifest=MANIFEST,
    project=DBT_PROJECT,
    select=EVENTS,
    name="dbt_events",
    dagster_dbt_translator=TRANSLATOR,
    pool=DBT_POOL,
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def dbt_event_assets(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    """Staging over raw.metric_points, intermediate models, facts and marts, for the partition's window."""
    partitioned = context.has_partition_key or context.has_partition_key_range
    window = window_vars(context.partition_time_window if partitioned else None)
    if window:
        context.log.info(f"dbt window {window['window_start']} .. {window['window_end']} (UTC)")
    args = _dbt_args(["build", *NO_UNIT_TESTS, *NOT_DIMENSION_TESTS], warehouse)
    # the window goes to the dbt process in its environment, not as --vars: dbt re-parses the whole project
    # when the vars change (every partition), and the macros read it at run time only
    with settings_mod.dbt_window(window):
        invocation = dbt.cli(args, context=context)
    yield from _stream(invocation, warehouse)


@dbt_assets(
    manifest=MANIFEST,
    project=DBT_PROJECT,
    select=DIMENSIONS,
    exclude=REFERENCE,
    name="dbt_observed_dimensions",
    dagster_dbt_translator=TRANSLATOR,
)
def dbt_observed_dimensions(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    """Dimensions over what was observed in any hour (dim_resource), rebuilt whole after the facts."""
    yield from _stream(dbt.cli(_dbt_args(["build", *NO_UNIT_TESTS], warehouse), context=context), warehouse)


@functools.cache
def _dbt_version(executable: str) -> version.Version:
    """The dbt-core version ``executable --version`` reports, found once per process: for this environment's
    own dbt, its installed dbt-core package's version (asking ``dbt --version`` costs seconds of CPU)."""
    if Path(executable).resolve() == warehouse_dbt.dbt_executable().resolve():
        return version.parse(importlib.metadata.version("dbt-core"))
    out = subprocess.check_output([executable, "--version"]).decode()
    found = re.search(r"(\d+\.\d+\.\d+)", out)
    if not found:
        raise ValueError(f"could not read the dbt version from `{executable} --version`: {out.strip()[:200]}")
    return version.parse(found.group(1))


class CmsDbtCliResource(DbtCliResource):
    """dagster-dbt's resource, with the dbt version found once per process, without starting dbt for this
    environment's own: the resource is set up again for every run, and dagster-dbt ran ``dbt --version`` (a
    dbt start-up, seconds of CPU) on each one."""

    @functools.cached_property
    def _cli_version(self) -> version.Version:
        return _dbt_version(self.dbt_executable)


@dg.definitions
def dbt_defs() -> dg.Definitions:
    # a module with an @dg.definitions function contributes only what the function returns
    return dg.Definitions(
        assets=[dbt_reference_assets, dbt_event_assets, dbt_observed_dimensions],
        resources={"dbt": CmsDbtCliResource(project_dir=DBT_PROJECT, dbt_executable=str(warehouse_dbt.dbt_executable()))},
    )
