"""`cms snowflake setup`: the idempotent SQL of infra/snowflake/.

What fakesnow accepts (database, schemas, file formats, stages, tables) runs through fakesnow, twice.
The rest cannot (warehouses, roles, grants, the storage integration, pipe, stream, tasks): each such
statement is parsed with sqlglot's Snowflake dialect and its type and key properties asserted; where
sqlglot falls back to a generic Command node, the statement's text is matched by a targeted regex
(and embedded COPY / MERGE / DELETE bodies are parsed). Every statement must be checked one way or the
other (docs/warehouse.md lists which is checked how).
"""

from __future__ import annotations

import argparse
import re

import fakesnow
import pytest
import snowflake.connector
import sqlglot
from sqlglot import exp
from warehouse_helpers import FAKESNOW_FILES, SETUP_VARIABLES, apply_fakesnow_subset

from cms_dagster.otel.schema import POINTS_SCHEMA
from cms_dagster.warehouse import cli as warehouse_cli
from cms_dagster.warehouse import snowflake_load as sl
from cms_dagster.warehouse import snowflake_setup

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ACCESS_ROLES = {
    "CMS_RAW_R", "CMS_RAW_RW", "CMS_STAGING_R", "CMS_STAGING_RW", "CMS_MARTS_R", "CMS_MARTS_RW",
    "CMS_INTELLIGENCE_R", "CMS_INTELLIGENCE_RW", "CMS_WH_QUERY", "CMS_WH_TRANSFORM",
}
FUNCTIONAL_ROLES = {"CMS_LOADER", "CMS_TRANSFORMER", "CMS_ANALYST", "CMS_ADMIN"}
SYSTEM_ROLES = {"SYSADMIN", "ACCOUNTADMIN", "USERADMIN", "SECURITYADMIN"}
IDENT = r"[A-Z0-9_$.]+"


@pytest.fixture(scope="module")
def statements() -> list[snowflake_setup.Statement]:
    return snowflake_setup.load_statements(SETUP_VARIABLES)


def _props(node: exp.Create) -> dict[str, str]:
    props = node.args.get("properties")
    out = {}
    for p in props.expressions if props else []:
        if type(p) is exp.Property:
            out[p.name.upper()] = p.args["value"].sql("snowflake")
        else:
            out[type(p).__name__] = p.sql("snowflake")
    return out


class Checked:
    """What the checks saw: objects created and the role graph, for the cross-statement assertions."""

    def __init__(self) -> None:
        self.how: dict[str, str] = {}
        self.warehouses: dict[str, dict[str, str]] = {}
        self.roles: set[str] = set()
        self.role_grants: set[tuple[str, str]] = set()
        self.privileges: list[tuple[str, str, str, str]] = []  # privileges, kind, object, role
        self.tasks: dict[str, exp.Expression] = {}
        self.pipe_copy: exp.Expression | None = None


def _check_command(st: snowflake_setup.Statement, sql: str, seen: Checked) -> str:
    """Targeted regexes for what sqlglot parses only as a generic Command; returns the rule name."""
    one = " ".join(sql.split())
    if m := re.fullmatch(r"CREATE ROLE IF NOT EXISTS (CMS_\w+) COMMENT = '[^']+'", one):
        seen.roles.add(m[1])
        return "regex: CREATE ROLE IF NOT EXISTS"
    if m := re.fullmatch(r"GRANT ROLE (CMS_\w+) TO ROLE (\w+)", one):
        seen.role_grants.add((m[1], m[2]))
        return "regex: GRANT ROLE ... TO ROLE"
    if m := re.fullmatch(rf"GRANT ([A-Z, ]+) ON (ALL|FUTURE) (TABLES|VIEWS) IN SCHEMA ({IDENT}) TO ROLE (CMS_\w+)", one):
        privs = {p.strip() for p in m[1].split(",")}
        assert privs <= {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"}, st.where
        seen.privileges.append((m[1], f"{m[2]} {m[3]}", m[4], m[5]))
        return "regex: GRANT ... ON ALL|FUTURE TABLES|VIEWS IN SCHEMA"
    if m := re.fullmatch(rf"GRANT ((?:MONITOR|OPERATE)(?:, (?:MONITOR|OPERATE))*) ON (PIPE|TASK) ({IDENT}) TO ROLE (CMS_\w+)", one):
        seen.privileges.append((m[1], m[2], m[3], m[4]))
        return "regex: GRANT MONITOR, OPERATE ON PIPE|TASK"
    if m := re.fullmatch(rf"CREATE PIPE IF NOT EXISTS ({IDENT}) AUTO_INGEST = TRUE COMMENT = '[^']+' AS (COPY INTO .+)", one):
        copy = sqlglot.parse_one(m[2], read="snowflake")
        assert isinstance(copy, exp.Copy), st.where
        assert copy.this.sql("snowflake") == "CMS.RAW.METRIC_POINTS_LANDING"
        assert "@CMS.RAW.PROCESSED_ZONE_STAGE/points/" in copy.sql("snowflake")
        assert "MATCH_BY_COLUMN_NAME" in copy.sql("snowflake").upper()
        seen.pipe_copy = copy
        return "regex: CREATE PIPE ... AS + sqlglot Copy"
    if m := re.fullmatch(rf"CREATE STREAM IF NOT EXISTS ({IDENT}) ON TABLE ({IDENT}) APPEND_ONLY = TRUE COMMENT = '[^']+'", one):
        assert m[2] == "CMS.RAW.METRIC_POINTS_LANDING", st.where
        return "regex: CREATE STREAM ... ON TABLE"
    if m := re.fullmatch(
        rf"CREATE TASK IF NOT EXISTS ({IDENT}) WAREHOUSE = (\w+) SCHEDULE = '([^']+)' COMMENT = '[^']+'"
        rf"(?: WHEN SYSTEM\$STREAM_HAS_DATA\('({IDENT})'\))? AS (.+)",
        one,
    ):
        assert m[2] == "CMS_TRANSFORM_M" and re.fullmatch(r"\d+ MINUTE|USING CRON .+ UTC", m[3]), st.where
        body = sqlglot.parse_one(m[5], read="snowflake")
        assert isinstance(body, (exp.Merge, exp.Delete)), st.where
        seen.tasks[m[1]] = body
        return "regex: CREATE TASK ... AS + sqlglot Merge/Delete"
    if m := re.fullmatch(rf"ALTER TASK ({IDENT}) RESUME", one):
        assert m[1] in seen.tasks, f"{st.where}: resumes a task not created before it"
        return "regex: ALTER TASK ... RESUME"
    raise AssertionError(f"{st.where}: no check for a statement sqlglot parses as a Command: {one[:120]}")


def check_statement(st: snowflake_setup.Statement, seen: Checked) -> str:
    """Assert what a statement fakesnow cannot run does; returns how it was checked."""
    node = sqlglot.parse_one(st.sql, read="snowflake")
    if isinstance(node, exp.Command):
        return _check_command(st, st.sql, seen)
    if isinstance(node, exp.Use):
        assert node.args["kind"].name.upper() == "ROLE" and node.this.sql("snowflake").upper() in SYSTEM_ROLES, st.where
        return "sqlglot: Use ROLE"
    if isinstance(node, exp.Create):
        kind = node.kind.upper()
        assert node.args.get("exists") and not node.args.get("replace"), f"{st.where}: CREATE must be IF NOT EXISTS"
        props = _props(node)
        if kind == "WAREHOUSE":
            assert props["WAREHOUSE_SIZE"] in ("'XSMALL'", "'MEDIUM'"), st.where
            assert (props["AUTO_SUSPEND"], props["AUTO_RESUME"], props["INITIALLY_SUSPENDED"]) == ("60", "TRUE", "TRUE"), st.where
            seen.warehouses[node.this.name.upper()] = props
            return "sqlglot: Create WAREHOUSE"
        if kind == "STORAGE INTEGRATION":
            assert props["TYPE"] == "EXTERNAL_STAGE" and props["STORAGE_PROVIDER"] == "'S3'" and props["ENABLED"] == "TRUE"
            assert props["STORAGE_AWS_ROLE_ARN"] == f"'{SETUP_VARIABLES['S3_ROLE_ARN']}'"
            assert SETUP_VARIABLES["RAW_URL"] in props["STORAGE_ALLOWED_LOCATIONS"]
            assert SETUP_VARIABLES["PROCESSED_URL"] in props["STORAGE_ALLOWED_LOCATIONS"]
            return "sqlglot: Create STORAGE INTEGRATION"
        raise AssertionError(f"{st.where}: unexpected CREATE {kind} outside the fakesnow files")
    if isinstance(node, exp.Grant):
        privs = {p.sql("snowflake").upper() for p in node.args.get("privileges") or []}
        text = re.match(r"GRANT (.+?) ON ", " ".join(st.sql.split()))
        text_privs = {p.strip().upper() for p in text[1].split(",")} if text else set()
        assert privs and privs == text_privs, f"{st.where}: parsed {privs}, written {text_privs}"
        kind = node.args["kind"].upper()
        securable = node.args["securable"].sql("snowflake").upper()
        principals = [p.sql("snowflake").upper() for p in node.args["principals"]]
        assert len(principals) == 1 and principals[0].startswith("ROLE "), st.where
        role = principals[0].split(" ", 1)[1]
        allowed = {
            "WAREHOUSE": {"USAGE", "OPERATE", "MONITOR"},
            "DATABASE": {"USAGE"},
            "SCHEMA": {"USAGE", "CREATE TABLE", "CREATE VIEW"},
            "STAGE": {"USAGE", "READ", "WRITE"},
            "FILE FORMAT": {"USAGE"},
            "INTEGRATION": {"USAGE"},
        }[kind]
        assert privs <= allowed, f"{st.where}: {privs} on {kind}"
        seen.privileges.append((", ".join(sorted(privs)), kind, securable, role))
        return f"sqlglot: Grant ON {kind}"
    raise AssertionError(f"{st.where}: unexpected statement type {type(node).__name__}")


def is_fakesnow(st: snowflake_setup.Statement) -> bool:
    return st.file in FAKESNOW_FILES and not st.sql.upper().startswith("USE ROLE")


@pytest.fixture(scope="module")
def checked(statements: list[snowflake_setup.Statement]) -> Checked:
    seen = Checked()
    for st in statements:
        seen.how[st.where] = "fakesnow" if is_fakesnow(st) else check_statement(st, seen)
    return seen


def test_fakesnow_creates_the_objects_and_a_second_run_changes_nothing() -> None:
    with fakesnow.patch():
        conn = snowflake.connector.connect()
        first = apply_fakesnow_subset(conn)
        second = apply_fakesnow_subset(conn)
        assert first == second > 10
        cur = conn.cursor()
        cur.execute("select schema_name from CMS.information_schema.schemata order by 1")
        assert {"RAW", "STAGING", "MARTS", "INTELLIGENCE"} <= {r[0] for r in cur.fetchall()}
        cur.execute(
            "select table_name from CMS.information_schema.tables where table_schema = 'RAW' order by 1"
        )
        assert [r[0] for r in cur.fetchall()] == ["METRIC_POINTS", "METRIC_POINTS_LANDING"]
        cur.execute(
            "select column_name from CMS.information_schema.columns where table_schema = 'RAW' "
            "and table_name = 'METRIC_POINTS' order by ordinal_position"
        )
        assert [r[0].lower() for r in cur.fetchall()] == POINTS_SCHEMA.names
        cur.execute("show stages in schema CMS.RAW")
        assert {r[1] for r in cur.fetchall()} == {"RAW_ZONE_STAGE", "PROCESSED_ZONE_STAGE", "POINTS_INTERNAL_STAGE"}


def test_every_statement_is_checked_by_fakesnow_or_sqlglot(checked: Checked, statements: list) -> None:
    assert len(checked.how) == len(statements)
    kinds = set(checked.how.values())
    assert "fakesnow" in kinds and "sqlglot: Create WAREHOUSE" in kinds and "regex: CREATE ROLE IF NOT EXISTS" in kinds


def test_warehouses_are_xs_and_m_and_suspend_themselves(checked: Checked) -> None:
    assert {k: v["WAREHOUSE_SIZE"] for k, v in checked.warehouses.items()} == {
        "CMS_QUERY_XS": "'XSMALL'",
        "CMS_TRANSFORM_M": "'MEDIUM'",
    }


def test_functional_roles_are_made_of_access_roles(checked: Checked) -> None:
    assert checked.roles == ACCESS_ROLES | FUNCTIONAL_ROLES
    grants = checked.role_grants

    def members(role: str) -> set[str]:
        direct = {a for a, b in grants if b == role}
        return direct | {m for d in direct for m in members(d)}

    assert members("CMS_LOADER") == {"CMS_RAW_RW", "CMS_RAW_R", "CMS_WH_TRANSFORM"}
    assert members("CMS_TRANSFORMER") == {
        "CMS_RAW_R", "CMS_STAGING_RW", "CMS_STAGING_R", "CMS_MARTS_RW", "CMS_MARTS_R",
        "CMS_INTELLIGENCE_RW", "CMS_INTELLIGENCE_R", "CMS_WH_TRANSFORM",
    }
    assert members("CMS_ANALYST") == {"CMS_MARTS_R", "CMS_STAGING_R", "CMS_INTELLIGENCE_R", "CMS_WH_QUERY"}
    assert members("CMS_ADMIN") >= FUNCTIONAL_ROLES - {"CMS_ADMIN"}
    assert ("CMS_ADMIN", "SYSADMIN") in grants


def test_grants_give_read_to_readers_and_write_only_to_writers(checked: Checked) -> None:
    by_role: dict[str, set[str]] = {}
    for privs, kind, obj, role in checked.privileges:
        by_role.setdefault(role, set()).add(f"{privs} {kind} {obj}")
    writes = ("INSERT", "UPDATE", "DELETE", "CREATE TABLE", "WRITE")
    for role in ("CMS_RAW_R", "CMS_STAGING_R", "CMS_MARTS_R", "CMS_INTELLIGENCE_R", "CMS_WH_QUERY"):
        assert not any(w in g for g in by_role[role] for w in writes), role
    assert any("FUTURE TABLES CMS.MARTS" in g and g.startswith("SELECT") for g in by_role["CMS_MARTS_R"])
    assert any("CREATE TABLE" in g and "CMS.RAW" in g for g in by_role["CMS_RAW_RW"])
    # the anomaly and incident assets replace their spans: delete and insert in INTELLIGENCE
    assert any("DELETE" in g and "FUTURE TABLES CMS.INTELLIGENCE" in g for g in by_role["CMS_INTELLIGENCE_RW"])
    assert any("READ, WRITE STAGE CMS.RAW.POINTS_INTERNAL_STAGE" in g for g in by_role["CMS_RAW_RW"])
    assert any("OPERATE, USAGE WAREHOUSE CMS_QUERY_XS" in g for g in by_role["CMS_WH_QUERY"])


def test_the_pipe_lands_files_and_the_task_merges_like_the_batch_loader(checked: Checked) -> None:
    assert checked.pipe_copy is not None
    merge = checked.tasks["CMS.RAW.MERGE_LANDED_POINTS"]
    expected = sqlglot.parse_one(
        sl.merge_sql("CMS.RAW.METRIC_POINTS_LANDING_STREAM", "CMS.RAW.METRIC_POINTS"), read="snowflake"
    )
    assert merge == expected
    assert "QUALIFY" in merge.args["using"].sql("snowflake").upper()
    assert isinstance(checked.tasks["CMS.RAW.PRUNE_LANDED_POINTS"], exp.Delete)


def test_the_raw_table_has_the_contract_columns_and_types() -> None:
    text = (snowflake_setup.sql_dir() / "50_tables.sql").read_text()
    rendered = snowflake_setup.render(text, SETUP_VARIABLES)
    creates = [
        sqlglot.parse_one(s, read="snowflake") for s in snowflake_setup.split_statements(rendered) if s.upper().startswith("CREATE")
    ]
    for create in creates:
        cols = [(c.name.lower(), c.args["kind"].sql("snowflake")) for c in create.this.expressions if isinstance(c, exp.ColumnDef)]
        expected = [(n, exp.DataType.build(t, dialect="snowflake").sql("snowflake")) for n, t in sl.column_types()]
        assert cols == expected, create.this.sql()
    assert sl.table_ddl("${DATABASE}.RAW.METRIC_POINTS") in text  # the file is the loader's DDL


def test_every_create_is_if_not_exists_and_nothing_is_replaced(statements: list) -> None:
    for st in statements:
        one = " ".join(st.sql.split()).upper()
        assert "OR REPLACE" not in one, st.where
        if one.startswith("CREATE"):
            assert "IF NOT EXISTS" in one, st.where


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cms")
    warehouse_cli.register(p.add_subparsers(dest="command"))
    return p


def test_dry_run_prints_the_statements_in_order(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMS_RAW_URL", "s3://acme-cms-raw")
    monkeypatch.setenv("CMS_PROCESSED_URL", "s3://acme-cms-processed/zone")
    monkeypatch.delenv("CMS_SNOWFLAKE_S3_ROLE_ARN", raising=False)
    args = _parser().parse_args(["snowflake", "setup", "--dry-run"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    order = [m.group(1) for m in re.finditer(r"^-- (\d\d_\w+\.sql)#1$", out, re.M)]
    assert order == sorted(order) and len(order) == len(list(snowflake_setup.sql_dir().glob("*.sql")))
    assert "URL = 's3://acme-cms-processed/zone/'" in out
    assert "<set CMS_SNOWFLAKE_S3_ROLE_ARN>" in out  # a missing value is shown, not guessed
    assert out.rstrip().endswith("nothing was executed (dry run)")


def test_a_real_run_without_bucket_settings_says_what_to_set(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CMS_SNOWFLAKE_S3_ROLE_ARN", raising=False)
    monkeypatch.setenv("CMS_RAW_URL", "/tmp/local-raw")
    args = _parser().parse_args(["snowflake", "setup"])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "CMS_SNOWFLAKE_S3_ROLE_ARN" in err and "CMS_RAW_URL (an s3:// URL)" in err


def test_statement_splitting_respects_quotes_and_comments() -> None:
    sql = "-- a; comment\nSELECT 'a;b' ; /* c; */ SELECT $$x;y$$;\nSELECT \"q;\";"
    assert snowflake_setup.split_statements(sql) == ["SELECT 'a;b'", "SELECT $$x;y$$", 'SELECT "q;"']
