"""The docs a newcomer reads name things that exist: module paths, ``cms`` commands and their flags, and
``CMS_*`` settings. A rename in the code that leaves a page behind fails here with the page and the name."""

from __future__ import annotations

import argparse
import importlib
import json
import re
from pathlib import Path

import pytest

from cms_dagster import settings
from cms_dagster.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted(
    [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "infra" / "README.md", ROOT / "benchmarks" / "README.md"]
    + list((ROOT / "docs").glob("*.md"))
    + list((ROOT / "cms_dagster").glob("*/README.md"))
)
# Top-level folders whose paths the docs spell out in full (`cms_dagster/lake/zone.py`, `tests/unit/`).
TREE_ROOTS = ("cms_dagster", "cms_harness", "tests", "benchmarks", "infra", "dbt_project", "sdks", "docs")
PATH_RE = re.compile(r"(?<![\w/.$-])((?:" + "|".join(TREE_ROOTS) + r")/[\w./-]*[\w/])")
# CMS_* words in the docs that are not settings: Snowflake objects are checked against infra/snowflake,
# these are names of another kind.
NOT_SETTINGS = {
    "CMS_COLLECTOR_PACKAGE": "the note file inside the collector zip (cms_dagster/infra/package.py)",
    "CMS_OPERATIONS": "the Streamlit object docs/dashboard.md creates in Snowflake",
    "CMS_DASHBOARD_POOL": "the compute pool docs/dashboard.md creates in Snowflake",
    "CMS_NAB_DIR": "read by benchmarks/nab.py, a script outside the product",
    "CMS_PETSHOP_DIR": "read by benchmarks/petshop.py and petshop_inject.py, scripts outside the product",
    "CMS_DBT_WINDOW_START": "set for its dbt process by the dbt asset (settings.dbt_window), read by dbt's macros",
    "CMS_DBT_WINDOW_END": "set for its dbt process by the dbt asset (settings.dbt_window), read by dbt's macros",
}


def _rel(doc: Path) -> str:
    return str(doc.relative_to(ROOT))


def _doc_text(doc: Path) -> str:
    return doc.read_text(encoding="utf-8")


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_every_path_a_doc_names_exists(doc: Path) -> None:
    missing = []
    for path in sorted(set(PATH_RE.findall(_doc_text(doc)))):
        if "NAME" in path:  # a placeholder: benchmarks/NAME.py
            continue
        if not (ROOT / path.rstrip("/.")).exists():
            missing.append(path)
    assert not missing, f"{_rel(doc)} names paths that are not in the tree: {missing}"


LINK_RE = re.compile(r"\]\(([^)\s#]*)#([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the headings of ``page``: lower case, punctuation but ``-`` and ``_`` dropped,
    spaces as hyphens, ``-1``, ``-2`` ... for repeats."""
    seen: dict[str, int] = {}
    anchors = set()
    in_code = False
    for line in _doc_text(page).splitlines():
        if line.startswith("```"):
            in_code = not in_code
        m = re.match(r"#{1,6} (.+)", line)
        if in_code or not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_every_link_to_a_heading_finds_it(doc: Path) -> None:
    wrong = []
    for target, anchor in LINK_RE.findall(_doc_text(doc)):
        page = (doc.parent / target).resolve() if target else doc
        if page.suffix != ".md" or not page.exists():
            continue  # not a page of the tree (the path test covers the tree's paths)
        if anchor not in _anchors(page):
            wrong.append(f"{target}#{anchor}")
    assert not wrong, f"{_rel(doc)} links to headings that do not exist: {wrong}"


def _snowflake_objects() -> set[str]:
    sql = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "infra" / "snowflake").glob("*.sql"))
    return set(re.findall(r"\bCMS_[A-Z0-9_]+", sql))


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_every_cms_variable_a_doc_names_is_a_setting(doc: Path) -> None:
    known = {s.env for s in settings.SETTINGS} | _snowflake_objects() | set(NOT_SETTINGS)
    # prefixes the docs use for a family (`CMS_DAGSTER_*`, `CMS_*_URL`) end in an underscore and are skipped
    named = set(re.findall(r"\bCMS_[A-Z0-9_]*[A-Z0-9]\b", _doc_text(doc)))
    unknown = sorted(named - known)
    assert not unknown, f"{_rel(doc)} names CMS_ variables that settings.py does not read: {unknown}"


def test_every_setting_has_one_row_with_its_default_in_configuration_md() -> None:
    rows: dict[str, list[str]] = {}
    for line in _doc_text(ROOT / "docs" / "configuration.md").splitlines():
        m = re.match(r"\|\s*`([A-Z0-9_]+)`\s*\|([^|]*)\|", line)
        if m:
            rows.setdefault(m.group(1), []).append(m.group(2))
    wrong = []
    for s in settings.SETTINGS:
        found = rows.get(s.env, [])
        if len(found) != 1:
            wrong.append(f"{s.env}: {len(found)} rows")
            continue
        default = re.sub(r"\(secret[^)]*\)", "", found[0]).replace("`", "").strip()
        default = "" if default in ("—", "") else default
        if default != s.default:
            wrong.append(f"{s.env}: docs say {default!r}, settings.py {s.default!r}")
    assert not wrong, "docs/configuration.md disagrees with settings.SETTINGS: " + "; ".join(wrong)
    assert set(rows) <= {s.env for s in settings.SETTINGS}, (
        f"docs/configuration.md lists variables settings.SETTINGS lacks: {sorted(set(rows) - {s.env for s in settings.SETTINGS})}"
    )


def test_every_variable_settings_py_reads_is_in_configuration_md() -> None:
    source = (ROOT / "cms_dagster" / "settings.py").read_text(encoding="utf-8")
    read = set(re.findall(r'_(?:env|list|number)\(\w+, "([A-Z][A-Z0-9_]+)"', source))
    assert "CMS_HOME" in read  # the pattern still matches how settings.py reads a variable
    doc = _doc_text(ROOT / "docs" / "configuration.md")
    missing = sorted(name for name in read if f"`{name}`" not in doc)
    assert not missing, f"settings.py reads variables docs/configuration.md does not mention: {missing}"


def _command_tree(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> dict[tuple[str, ...], set[str]]:
    tree: dict[tuple[str, ...], set[str]] = {prefix: set()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                tree.update(_command_tree(sub, prefix + (name,)))
        else:
            tree[prefix] |= set(action.option_strings)
    return tree


COMMAND_RE = re.compile(r"`(?:\.venv/bin/)?cms ([^`]+)`|^\s*(?:\.venv/bin/)?cms ([a-z][^#\n]*)", re.MULTILINE)


def _command_problems(text: str, tree: dict[tuple[str, ...], set[str]]) -> list[str]:
    """What is wrong with the `cms ...` commands shown in ``text``: unknown subcommands and flags."""
    wrong = []
    for m in COMMAND_RE.finditer(text):
        shown = (m.group(1) or m.group(2)).strip()
        path: tuple[str, ...] = ()
        for word in shown.split():
            alternatives = word.split("|")
            if all(path + (w,) in tree for w in alternatives):
                path = path + (alternatives[-1],)
                continue
            has_subcommands = any(len(k) == len(path) + 1 and k[: len(path)] == path for k in tree)
            if has_subcommands and re.fullmatch(r"[a-z][a-z-]*", word):
                wrong.append(f"cms {shown}: no subcommand {word!r} under 'cms {' '.join(path)}'")
            break
        if not path:
            continue
        flags = tree[path] | tree[()]
        wrong += [
            f"cms {shown}: no flag {flag}"
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", shown)
            if flag not in flags
        ]
    return wrong


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_every_cms_command_and_flag_a_doc_shows_exists(doc: Path) -> None:
    wrong = _command_problems(_doc_text(doc), _command_tree(build_parser()))
    assert not wrong, f"{_rel(doc)}: " + "; ".join(wrong)


def _helps(parser: argparse.ArgumentParser, name: str = "cms") -> list[tuple[str, str]]:
    helps = [(name, parser.format_help())]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                helps += _helps(sub, f"{name} {sub_name}")
    return helps


def test_every_example_in_a_help_text_is_a_real_command() -> None:
    parser = build_parser()
    tree = _command_tree(parser)
    helps = _helps(parser)
    assert len(helps) > 20
    wrong = [f"{name} --help: {problem}" for name, text in helps for problem in _command_problems(text, tree)]
    assert not wrong, "; ".join(wrong)


def test_architecture_md_names_every_job_schedule_and_sensor() -> None:
    # the snapshot is itself compared with the loaded definitions by tests/integration/test_asset_graph_snapshot.py
    graph = json.loads((ROOT / "tests" / "snapshots" / "asset_graph.json").read_text(encoding="utf-8"))
    names = [*graph["jobs"], *graph["schedules"], *graph["sensors"]]
    assert names
    page = _doc_text(ROOT / "docs" / "architecture.md")
    missing = [name for name in names if f"`{name}`" not in page]
    assert not missing, (
        f"docs/architecture.md does not name {missing} (its jobs, schedules and sensors table)"
    )


BENCHMARK_RE = re.compile(r"`(?:\.venv/bin/python )?(?:benchmarks/)?(\w+)\.py ([^`]*)`")


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_every_benchmark_flag_a_doc_shows_exists(doc: Path) -> None:
    wrong = []
    for script, args in BENCHMARK_RE.findall(_doc_text(doc)):
        path = ROOT / "benchmarks" / f"{script}.py"
        if not path.exists():
            continue  # not a benchmark (the path test covers benchmarks/ paths)
        source = path.read_text(encoding="utf-8")
        wrong += [
            f"benchmarks/{script}.py {flag}"
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", args)
            if f'"{flag}"' not in source
        ]
    assert not wrong, f"{_rel(doc)} shows benchmark flags the scripts do not take: {wrong}"


def _leaf_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[str]:
    leaves: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                leaves += _leaf_commands(sub, prefix + (name,)) or [" ".join(("cms",) + prefix + (name,))]
    return leaves


def test_the_readme_command_list_names_every_command() -> None:
    readme = _doc_text(ROOT / "README.md")
    listed = readme[readme.index("## The `cms` command") :]
    listed = listed[: listed.index("\n## ")]
    leaves = _leaf_commands(build_parser())
    assert len(leaves) > 10
    missing = []
    for leaf in leaves:
        *parent, name = leaf.split()
        # `cms infra validate|package|deploy` lists three commands at once
        if not re.search(
            re.escape(" ".join(parent)) + r" (?:[\w-]+\|)*" + re.escape(name) + r"(?![\w-])", listed
        ):
            missing.append(leaf)
    assert not missing, f"README.md's list of cms commands lacks {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_every_dbt_model_a_doc_names_exists(doc: Path) -> None:
    project = ROOT / "dbt_project"
    models = {p.stem for p in (project / "models").rglob("*.sql")} | {
        p.stem for p in (project / "seeds").rglob("*.csv")
    }
    named = set(re.findall(r"\b((?:stg|int|dim|fct|mart)_[a-z0-9_]*[a-z0-9])\b", _doc_text(doc)))
    unknown = sorted(named - models)
    assert not unknown, f"{_rel(doc)} names dbt models that dbt_project/ does not have: {unknown}"


IMPORT_RE = re.compile(r"^\s*from (cms_dagster(?:\.\w+)*) import ([\w, ]+)$", re.MULTILINE)


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_every_import_a_doc_shows_works(doc: Path) -> None:
    wrong = []
    for module_name, names in IMPORT_RE.findall(_doc_text(doc)):
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            wrong.append(f"{module_name}: {e}")
            continue
        wrong += [f"{module_name}.{n.strip()}" for n in names.split(",") if not hasattr(module, n.strip())]
    assert not wrong, f"{_rel(doc)} shows imports that fail: {wrong}"


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_every_make_target_a_doc_shows_exists(doc: Path) -> None:
    targets = set(
        re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
    )
    assert "test" in targets
    named = set(re.findall(r"(?:`|^)make ([a-z][\w-]*)", _doc_text(doc), re.MULTILINE))
    unknown = sorted(named - targets)
    assert not unknown, f"{_rel(doc)} shows make targets the Makefile lacks: {unknown}"
