"""The Snowflake environment as idempotent SQL (``infra/snowflake/NN_*.sql``), rendered and applied in order.

Files are applied by name order; each is a list of statements separated by ``;``. ``${NAME}`` placeholders
are filled from the settings: ``DATABASE`` (``SNOWFLAKE_DATABASE``, default ``CMS``), ``RAW_URL`` and
``PROCESSED_URL`` (``CMS_RAW_URL`` / ``CMS_PROCESSED_URL``, which must be ``s3://`` URLs for the storage
integration and external stages) and ``S3_ROLE_ARN`` (``CMS_SNOWFLAKE_S3_ROLE_ARN``: the IAM role Snowflake
assumes to read the buckets). Every statement is ``CREATE ... IF NOT EXISTS``, ``GRANT``, ``USE`` or
``ALTER TASK ... RESUME``, so applying twice changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cms_dagster
from cms_dagster import settings as settings_mod

_PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")
VARIABLES = ("DATABASE", "RAW_URL", "PROCESSED_URL", "S3_ROLE_ARN")


def sql_dir(settings: settings_mod.Settings | None = None) -> Path:
    """``CMS_SNOWFLAKE_SQL_DIR`` of the settings, else ``infra/snowflake/`` beside the ``cms_dagster`` package."""
    if settings is not None and settings.snowflake_sql_dir:
        return Path(settings.snowflake_sql_dir).expanduser().resolve()
    return Path(cms_dagster.__file__).resolve().parent.parent / "infra" / "snowflake"


def _bucket_url(url: str) -> str:
    return url.rstrip("/") + "/" if url.startswith("s3://") else ""


def setup_variables(settings: settings_mod.Settings) -> dict[str, str]:
    """Values of the placeholders from the settings; a value that cannot be had is ''."""
    s = settings
    return {
        "DATABASE": s.snowflake_database.upper(),
        "RAW_URL": _bucket_url(s.raw_url),
        "PROCESSED_URL": _bucket_url(s.processed_url),
        "S3_ROLE_ARN": s.snowflake_s3_role_arn,
    }


_HELP = {
    "DATABASE": "SNOWFLAKE_DATABASE",
    "RAW_URL": "CMS_RAW_URL (an s3:// URL)",
    "PROCESSED_URL": "CMS_PROCESSED_URL (an s3:// URL)",
    "S3_ROLE_ARN": "CMS_SNOWFLAKE_S3_ROLE_ARN (the IAM role Snowflake assumes to read the buckets)",
}


def render(text: str, variables: Mapping[str, str], strict: bool = True) -> str:
    """Fill ``${NAME}`` placeholders. Missing values raise (strict) or show as ``<set ...>`` (dry runs)."""
    missing = sorted({m for m in _PLACEHOLDER.findall(text) if not variables.get(m)})
    if missing and strict:
        need = "; ".join(f"{m}: set {_HELP.get(m, m)}" for m in missing)
        raise ValueError(f"the Snowflake setup needs values for {', '.join(missing)} ({need})")
    return _PLACEHOLDER.sub(lambda m: variables.get(m[1]) or f"<set {_HELP.get(m[1], m[1]).split(' ')[0]}>", text)


def split_statements(text: str) -> list[str]:
    """Split SQL on ``;`` outside quotes, ``$$`` blocks and comments; comment-only pieces are dropped."""
    out: list[str] = []
    buf: list[str] = []
    i, n = 0, len(text)
    quote: str | None = None
    while i < n:
        c = text[i]
        if quote:
            buf.append(c)
            if text.startswith(quote, i):
                if quote == "'" and text.startswith("''", i):
                    buf.append("'")
                    i += 2
                    continue
                buf.extend(quote[1:])
                i += len(quote)
                quote = None
                continue
            i += 1
            continue
        if text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        if text.startswith("$$", i):
            quote = "$$"
            buf.append("$$")
            i += 2
            continue
        if c in ("'", '"'):
            quote = c
            buf.append(c)
            i += 1
            continue
        if c == ";":
            stmt = "".join(buf).strip()
            if stmt:
                out.append(stmt)
            buf = []
            i += 1
            continue
        buf.append(c)
        i += 1
    stmt = "".join(buf).strip()
    if stmt:
        out.append(stmt)
    return out


@dataclass(frozen=True)
class Statement:
    file: str
    index: int  # 1-based within the file
    sql: str

    @property
    def where(self) -> str:
        return f"{self.file}#{self.index}"


def load_statements(
    variables: Mapping[str, str] | None = None,
    *,
    strict: bool = True,
    directory: Path | None = None,
    settings: settings_mod.Settings | None = None,
) -> list[Statement]:
    """Every statement of the setup, in the order it is applied; placeholders from ``variables``, else from
    ``settings`` (one of the two is needed)."""
    d = directory or sql_dir(settings)
    files = sorted(d.glob("*.sql"))
    if not files:
        raise FileNotFoundError(f"no *.sql files in {d}: set CMS_SNOWFLAKE_SQL_DIR to the infra/snowflake folder")
    if variables is None and settings is None:
        raise ValueError("load_statements needs the placeholder values or the settings to take them from")
    values = dict(setup_variables(settings) if variables is None else variables)
    out: list[Statement] = []
    for f in files:
        for k, sql in enumerate(split_statements(render(f.read_text(), values, strict=strict)), start=1):
            out.append(Statement(f.name, k, sql))
    return out


def apply(conn: Any, statements: list[Statement], log: Callable[[str], None] | None = None) -> int:
    """Execute the statements in order on a snowflake-connector connection; returns how many ran.
    A failure names the file and statement."""
    say = log or (lambda _m: None)
    cur = conn.cursor()
    try:
        for st in statements:
            first = " ".join(st.sql.split())[:100]
            say(f"{st.where}: {first}")
            try:
                cur.execute(st.sql)
            except Exception as e:  # the connector raises ProgrammingError and friends
                raise RuntimeError(f"{st.where} failed: {e}\n  statement: {first}...") from e
    finally:
        cur.close()
    return len(statements)
