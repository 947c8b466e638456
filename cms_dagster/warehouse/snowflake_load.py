"""Load processed Parquet points into Snowflake's ``RAW.METRIC_POINTS``, idempotently by point id.

For one partition (an hour of the processed zone):

1. ``COPY INTO`` a fresh transient staging table, from the external stage on the processed bucket
   (production, ``stage_path``) or from the internal stage after a ``PUT`` of local files (the embedded
   lake, tests on fakesnow). ``FORCE = TRUE``: a re-run reloads the hour's files on purpose. Snowflake's
   load metadata skips *files* it has loaded, never duplicate *points* inside them or across files, so it
   alone cannot make loading idempotent.
2. Keep one row per point id: ``QUALIFY ROW_NUMBER() OVER (PARTITION BY point_id ORDER BY ingested_at
   DESC, raw_key DESC) = 1`` (the latest delivery wins, ties to the later batch).
3. ``MERGE`` into ``RAW.METRIC_POINTS`` on ``point_id``: insert new points; update a stored point only
   when the incoming copy is newer. A re-run, a retry or a duplicate delivery changes nothing.

Snowpipe (infra/snowflake/60_pipe.sql) is the continuous path: it lands files in
``RAW.METRIC_POINTS_LANDING`` and a task MERGEs them with the same statement.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from cms_dagster import lake as lake_mod
from cms_dagster import settings as settings_mod
from cms_dagster.otel.schema import POINTS_SCHEMA
from cms_dagster.warehouse.loading import LoadReport, processed_keys_for_hour

TABLE = "RAW.METRIC_POINTS"
INTERNAL_STAGE = "RAW.POINTS_INTERNAL_STAGE"
PROCESSED_STAGE = "RAW.PROCESSED_ZONE_STAGE"
PARQUET_FORMAT = "RAW.PARQUET_POINTS"

# Snowflake types of the contract's columns (docs/data-contract.md); timestamps are naive UTC.
_SNOWFLAKE_TYPES = {
    "string": "VARCHAR",
    "double": "FLOAT",
    "timestamp[us, tz=UTC]": "TIMESTAMP_NTZ",
    "date32[day]": "DATE",
    "int32": "INTEGER",
}
COLUMNS = [f.name for f in POINTS_SCHEMA]


def column_types() -> list[tuple[str, str]]:
    """(column, Snowflake type) of RAW.METRIC_POINTS, in contract order."""
    return [(f.name, _SNOWFLAKE_TYPES[str(f.type)]) for f in POINTS_SCHEMA]


def _q(name: str) -> str:
    """Quote a contract column (``sum``, ``count``, ``min``, ``max``, ``hour`` are function names)."""
    return f'"{name.upper()}"'


def table_ddl(table: str = TABLE, transient: bool = False) -> str:
    cols = ",\n  ".join(f"{_q(n)} {t}{' NOT NULL' if n == 'point_id' else ''}" for n, t in column_types())
    kind = "TRANSIENT TABLE" if transient else "TABLE"
    return f"CREATE {kind} IF NOT EXISTS {table} (\n  {cols}\n)"


def dedupe_sql(source: str) -> str:
    """The source's rows, one per point id: the latest ingested, ties to the later raw batch."""
    cols = ", ".join(_q(c) for c in COLUMNS)
    return (
        f"SELECT {cols} FROM {source} "
        f'QUALIFY ROW_NUMBER() OVER (PARTITION BY "POINT_ID" ORDER BY "INGESTED_AT" DESC, "RAW_KEY" DESC) = 1'
    )


def merge_sql(source: str, table: str = TABLE) -> str:
    """MERGE the deduplicated ``source`` into ``table``: insert new ids, replace older copies only."""
    updates = ", ".join(f"{_q(c)} = s.{_q(c)}" for c in COLUMNS if c != "point_id")
    cols = ", ".join(_q(c) for c in COLUMNS)
    vals = ", ".join(f"s.{_q(c)}" for c in COLUMNS)
    return (
        f"MERGE INTO {table} AS t USING ({dedupe_sql(source)}) AS s\n"
        f'  ON t."POINT_ID" = s."POINT_ID"\n'
        f'  WHEN MATCHED AND (s."INGESTED_AT" > t."INGESTED_AT"\n'
        f'    OR (s."INGESTED_AT" = t."INGESTED_AT" AND s."RAW_KEY" > t."RAW_KEY")) THEN UPDATE SET {updates}\n'
        f"  WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({vals})"
    )


def _one(cur: Any, sql: str) -> int:
    cur.execute(sql)
    row = cur.fetchone()
    return int(row[0] or 0) if row else 0


def load_partition_snowflake(
    conn: Any,
    parquet_paths: Sequence[str | Path] | None = None,
    *,
    stage_path: str | None = None,
    table: str = TABLE,
    internal_stage: str = INTERNAL_STAGE,
    load_id: str | None = None,
) -> LoadReport:
    """Load one partition's Parquet points into ``table``; returns the counts.

    Give either ``parquet_paths`` (local files: PUT to ``internal_stage``, then COPY and purge) or
    ``stage_path`` (a location on an external stage, e.g. ``@RAW.PROCESSED_ZONE_STAGE/points/dt=2026-11-20/hour=14/``:
    COPY straight from S3). ``conn`` is a snowflake-connector connection (or fakesnow's).
    """
    if (parquet_paths is None) == (stage_path is None):
        raise ValueError("give exactly one of parquet_paths (local files, PUT) or stage_path (@stage/location/)")
    paths = [Path(p) for p in parquet_paths or []]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"Parquet file(s) to load do not exist: {missing[:5]}")
    rep = LoadReport(files=len(paths))
    cur = conn.cursor()
    load_id = load_id or uuid.uuid4().hex[:12]
    staging = f"{table}_LOAD_{load_id.upper()}"
    try:
        cur.execute(table_ddl(staging, transient=True))
        if parquet_paths is not None:
            if not paths:
                rep.total_rows = _one(cur, f"SELECT COUNT(*) FROM {table}")
                return rep
            location = f"@{internal_stage}/load_{load_id}/"
            for p in paths:
                # the path is quoted: processed keys contain '--', which would start a SQL comment
                cur.execute(f"PUT 'file://{p.resolve()}' {location} AUTO_COMPRESS = FALSE OVERWRITE = TRUE")
            copy_opts = "FORCE = TRUE PURGE = TRUE"
        else:
            location = stage_path if stage_path.startswith("@") else f"@{stage_path}"
            copy_opts = "FORCE = TRUE"
        cur.execute(
            f"COPY INTO {staging} FROM {location} FILE_FORMAT = (TYPE = PARQUET) "
            f"MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE {copy_opts}"
        )
        if parquet_paths is None:
            rep.files = len(cur.fetchall() or [])
        rep.staged = _one(cur, f"SELECT COUNT(*) FROM {staging}")
        deduped = f"({dedupe_sql(staging)})"
        fresh = _one(
            cur, f'SELECT COUNT(*) FROM {deduped} AS s LEFT JOIN {table} AS t ON t."POINT_ID" = s."POINT_ID" WHERE t."POINT_ID" IS NULL'
        )
        newer = _one(
            cur,
            f'SELECT COUNT(*) FROM {deduped} AS s JOIN {table} AS t ON t."POINT_ID" = s."POINT_ID" '
            f'WHERE s."INGESTED_AT" > t."INGESTED_AT" OR (s."INGESTED_AT" = t."INGESTED_AT" AND s."RAW_KEY" > t."RAW_KEY")',
        )
        distinct = _one(cur, f"SELECT COUNT(*) FROM {deduped} AS s")
        cur.execute(merge_sql(staging, table))
        rep.inserted, rep.replaced, rep.unchanged = fresh, newer, distinct - fresh - newer
        rep.total_rows = _one(cur, f"SELECT COUNT(*) FROM {table}")
        return rep
    finally:
        cur.execute(f"DROP TABLE IF EXISTS {staging}")
        cur.close()


def connect(settings: settings_mod.Settings, *, role: str | None = None, query_tag: str = "cms") -> Any:
    """A snowflake-connector connection from the settings' ``SNOWFLAKE_*`` values, session time zone UTC.
    ``role`` defaults to ``SNOWFLAKE_ROLE`` (dbt, queries); loading passes ``settings.snowflake_load_role``.
    With ``CMS_SNOWFLAKE_AUTH=container`` it signs in with the container's session token instead of a user
    (:func:`container_auth`), as the service's owner role unless ``role`` is given."""
    import snowflake.connector

    s = settings
    if s.snowflake_auth == "container":
        auth = container_auth(s)
        if role:
            auth["role"] = role
    else:
        if not s.snowflake_account or not s.snowflake_user:
            raise ValueError(
                "set SNOWFLAKE_ACCOUNT and SNOWFLAKE_USER (and SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY_PATH), "
                "or CMS_SNOWFLAKE_AUTH=container inside Snowpark Container Services"
            )
        auth = {"user": s.snowflake_user, "role": role or s.snowflake_role}
        if s.snowflake_private_key_path:
            auth["private_key_file"] = s.snowflake_private_key_path
        else:
            auth["password"] = s.snowflake_password
    params: dict[str, Any] = {
        "account": s.snowflake_account,
        "warehouse": s.snowflake_warehouse,
        "database": s.snowflake_database,
        "schema": "RAW",
        "session_parameters": {"TIMEZONE": "UTC", "QUERY_TAG": query_tag},
        **auth,
    }
    if s.snowflake_host:
        params["host"] = s.snowflake_host
    if s.snowflake_port:
        params["port"] = int(s.snowflake_port)
    if s.snowflake_protocol:
        params["protocol"] = s.snowflake_protocol
    return snowflake.connector.connect(**params)


def container_auth(settings: settings_mod.Settings) -> dict[str, Any]:
    """Sign-in of code running in Snowpark Container Services (a Streamlit in Snowflake app on the container
    runtime, a service): the OAuth token Snowflake writes to ``CMS_SNOWFLAKE_TOKEN_FILE``
    (``/snowflake/session/token``), read at every connection since Snowflake refreshes it every few minutes;
    ``SNOWFLAKE_HOST`` (the account's internal host, which the runtime sets with ``SNOWFLAKE_ACCOUNT``)
    keeps the connection inside Snowflake."""
    s = settings
    path = Path(s.snowflake_token_file)
    try:
        token = path.read_text().strip()
    except OSError:
        raise ValueError(
            f"CMS_SNOWFLAKE_AUTH=container: no session token at {path} (it exists only inside Snowpark Container "
            "Services; elsewhere use CMS_SNOWFLAKE_AUTH=credentials, or point CMS_SNOWFLAKE_TOKEN_FILE at the token)"
        ) from None
    if not token:
        raise ValueError(f"CMS_SNOWFLAKE_AUTH=container: the session token file {path} is empty")
    if not s.snowflake_account or not s.snowflake_host:
        raise ValueError(
            "CMS_SNOWFLAKE_AUTH=container needs SNOWFLAKE_ACCOUNT and SNOWFLAKE_HOST (the container runtime sets both)"
        )
    return {"authenticator": "oauth", "token": token}


def load_hours_snowflake(
    zone: lake_mod.Zone,
    hours: Iterable[tuple[dt.date, int]],
    *,
    conn: Any = None,
    log: Callable[[str], None] | None = None,
    settings: settings_mod.Settings | None = None,
) -> LoadReport:
    """Load the processed zone's hours into RAW.METRIC_POINTS: COPY from the external stage when the zone
    is on S3, else PUT the local files to the internal stage. Opens a connection from ``settings`` (with the
    loading role) unless ``conn`` is given."""
    say = log or (lambda _m: None)
    own = conn is None
    if conn is None and settings is None:
        raise ValueError("load_hours_snowflake needs a connection or the settings to open one")
    conn = conn or connect(settings, role=settings.snowflake_load_role, query_tag="cms-load")
    total = LoadReport()
    try:
        for day, hour in hours:
            prefix = lake_mod.processed_hour_prefix(day, hour)
            if zone.is_s3:
                rep = load_partition_snowflake(conn, stage_path=f"@{PROCESSED_STAGE}/{prefix}")
            else:
                paths = [zone.path(k) for k in processed_keys_for_hour(zone, day, hour)]
                rep = load_partition_snowflake(conn, paths)
            say(f"{day} {hour:02d}:00: {rep.files} file(s), {rep.inserted} new, {rep.replaced} replaced, {rep.unchanged} unchanged")
            total.add(rep)
    finally:
        if own:
            conn.close()
    return total
