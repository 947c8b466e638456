"""The last check before any SQL runs, whichever engine produced it: parse it with sqlglot and accept
exactly one SELECT that reads only the allow-listed marts, calls only known functions and is bounded by
a row limit. Anything else is refused with the reason."""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from cms_dagster.nlq import semantic

_FORBIDDEN = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.Command,
    exp.Merge,
    exp.Copy,
    exp.Set,
    exp.Pragma,
    exp.Use,
    exp.Into,
    exp.Grant,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.LoadData,
    exp.Describe,
    exp.Show,
    exp.Attach,
    exp.Detach,
    exp.Install,
)
_FORBIDDEN = tuple(t for t in _FORBIDDEN if isinstance(t, type))


class GuardError(ValueError):
    """The SQL is not a single bounded SELECT over the allow-listed marts."""


def check(sql: str, dialect: str = "duckdb", max_rows: int = 1000) -> exp.Select:
    """Return the parsed SELECT, or raise GuardError saying what is not allowed."""
    if not sql or not sql.strip():
        raise GuardError("empty SQL")
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except ParseError as e:
        raise GuardError(f"not valid SQL: {str(e).splitlines()[0]}") from None
    if len(statements) != 1:
        raise GuardError(f"exactly one statement is allowed, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, exp.Select):
        raise GuardError(f"only a SELECT is allowed, not {tree.key.upper()}")
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN):
            raise GuardError(f"{node.key.upper()} is not allowed inside a question's SQL")
        if isinstance(node, (exp.Anonymous,)):
            raise GuardError(f"function {node.name!r} is not allowed")
        if isinstance(node, exp.Func) and type(node).__name__.lower().startswith(("read", "glob", "getenv", "currentuser")):
            raise GuardError(f"function {type(node).__name__} is not allowed")
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    allowed = {m.lower() for m in semantic.ALLOWED_MARTS}
    for t in tree.find_all(exp.Table):
        name, db, catalog = t.name.lower(), (t.db or "").lower(), (t.catalog or "")
        if not name:
            raise GuardError("reading from a table function or subquery source is not allowed")
        if not db and name in ctes:
            continue
        if catalog or db != "marts" or name not in allowed:
            shown = ".".join(p for p in (catalog, t.db, t.name) if p)
            raise GuardError(f"{shown} is not an allowed mart (allowed: marts.{', marts.'.join(semantic.ALLOWED_MARTS)})")
    limit = tree.args.get("limit")
    if limit is None:
        raise GuardError(f"an unbounded scan: the query needs LIMIT (at most {max_rows})")
    try:
        n = int(limit.expression.name)
    except (AttributeError, ValueError):
        raise GuardError("LIMIT must be a number") from None
    if n > max_rows:
        raise GuardError(f"LIMIT {n} is above the row limit {max_rows}")
    return tree
