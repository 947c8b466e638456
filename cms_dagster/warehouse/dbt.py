"""The dbt project: where it lives, which target the settings select, and how to prepare its manifest.

``dbt_target(settings)`` maps the settings to a dbt target (``DBT_TARGET``, else ``CMS_WAREHOUSE``:
``duckdb`` or ``snowflake``); ``dbt_project_dir/profiles.yml`` reads the connection details itself
(``CMS_DUCKDB_PATH`` or the ``cms_duckdb_path`` var, ``SNOWFLAKE_*``), so no credentials pass through Python.
``prepare()`` runs ``dbt parse`` to write ``target/manifest.json``, which loading the Dagster ``@dbt_assets``
needs. dbt runs as a child process: callers hand it its environment (``settings.process_environment()``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cms_dagster
from cms_dagster import settings as settings_mod

TARGETS = ("duckdb", "snowflake")
WRITING_COMMANDS = ("build", "run", "seed", "snapshot")


def dbt_project_dir(settings: settings_mod.Settings | None = None) -> Path:
    """``CMS_DBT_PROJECT_DIR`` of the settings, else the ``dbt_project/`` folder beside the ``cms_dagster`` package."""
    if settings is not None and settings.dbt_project_dir:
        return Path(settings.dbt_project_dir).expanduser().resolve()
    return Path(cms_dagster.__file__).resolve().parent.parent / "dbt_project"


def dbt_target(settings: settings_mod.Settings) -> str:
    """The dbt target: ``DBT_TARGET`` when set, else the warehouse of the settings (``CMS_WAREHOUSE``)."""
    target = settings.dbt_target or settings.warehouse
    if target not in TARGETS:
        raise ValueError(f"DBT_TARGET={target!r}: use one of {', '.join(TARGETS)} (or unset it to follow CMS_WAREHOUSE)")
    return target


def dbt_executable() -> Path:
    """The ``dbt`` of the running interpreter's environment (``.venv/bin/dbt``)."""
    return Path(sys.executable).parent / "dbt"


def dbt_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Environment for a dbt process: ``environ`` (the caller's), plus the target, ``CMS_DUCKDB_PATH`` and no tracking."""
    env = dict(environ)
    s = settings_mod.load(env)
    env.setdefault("DBT_TARGET", dbt_target(s))
    env.setdefault("CMS_DUCKDB_PATH", str(s.duckdb_path))
    env.setdefault("DO_NOT_TRACK", "1")
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return env


def dbt_project(settings: settings_mod.Settings):  # -> dagster_dbt.DbtProject
    """The ``dagster_dbt.DbtProject`` for the selected target (profiles live in the project folder)."""
    from dagster_dbt import DbtProject

    project_dir = dbt_project_dir(settings)
    return DbtProject(project_dir=project_dir, profiles_dir=project_dir, target=dbt_target(settings))


def manifest_path(settings: settings_mod.Settings | None = None) -> Path:
    return dbt_project_dir(settings) / "target" / "manifest.json"


def run_dbt(args: Sequence[str], environ: Mapping[str, str], check: bool = True) -> subprocess.CompletedProcess:
    """Run ``dbt <args>`` in the project with the target and profiles set; output is captured. ``environ``
    is the dbt process's environment (``settings.process_environment()`` for this process's own)."""
    env = dbt_env(environ)
    project_dir = dbt_project_dir(settings_mod.load(env))
    cmd = [
        str(dbt_executable()),
        *args,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(project_dir),
        "--target",
        env["DBT_TARGET"],
    ]
    proc = subprocess.run(cmd, cwd=project_dir, env=env, capture_output=True, text=True)
    if args and args[0] in WRITING_COMMANDS and env["DBT_TARGET"] == "duckdb":
        from cms_dagster.warehouse import snapshot

        snapshot.publish_file(Path(env["CMS_DUCKDB_PATH"]))  # what readers open (warehouse/snapshot.py)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise RuntimeError(f"`dbt {' '.join(args)}` failed (exit {proc.returncode}):\n{tail}")
    return proc


def profile_vars(settings: settings_mod.Settings) -> dict[str, str]:
    """The dbt vars the profile reads: on DuckDB the database file (``cms_duckdb_path``). The Dagster assets
    pass them to every build, and :func:`prepare` to its parse: dbt keeps a parse only for the same vars."""
    return {"cms_duckdb_path": str(settings.duckdb_path)} if settings.warehouse == "duckdb" else {}


def prepare(environ: Mapping[str, str]) -> Path:
    """Parse the dbt project (``dbt parse``) and return the path of the manifest it wrote. It parses with
    the vars the Dagster assets' builds pass, so that they start from this parse (dbt's partial parsing)
    instead of parsing the whole project again."""
    found = profile_vars(settings_mod.load(environ))
    run_dbt(["parse", "--quiet", *(["--vars", json.dumps(found)] if found else [])], environ)
    path = manifest_path(settings_mod.load(environ))
    if not path.exists():
        raise RuntimeError(f"dbt parse ran but wrote no {path}; run `dbt parse` in {path.parent.parent} to see why")
    return path


def relation_facts(
    query: Callable[[str, list], Any], schema: str, name: str, count_rows: bool
) -> tuple[list[tuple[str, str]], int | None]:
    """The columns (name, type, in order) of a built dbt relation ``schema.name`` and, when ``count_rows``,
    its row count.

    ``query`` is the warehouse's ``query(sql, params) -> DataFrame`` (DuckDB or Snowflake: names unquoted, in
    the connection's database, so the manifest's names serve both targets). Run it after the dbt process
    has ended: an embedded DuckDB file is held by dbt while it builds."""
    cols = query(
        "select column_name, data_type from information_schema.columns "
        "where upper(table_schema) = upper(?) and upper(table_name) = upper(?) order by ordinal_position",
        [schema, name],
    )
    columns = [(str(r.column_name).lower(), str(r.data_type)) for r in cols.itertuples()]
    rows = None
    if count_rows and columns:
        rows = int(query(f"select count(*) as n from {schema}.{name}", []).iloc[0, 0])
    return columns, rows
