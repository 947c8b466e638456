"""Build the collector function's deployment zip: the ``cms_dagster`` code, reproducibly.

The zip holds the ``cms_dagster`` package less what the function never imports (Dagster wiring, the
dashboard, infrastructure code, tests). boto3 and botocore come with the AWS Lambda Python runtime and
are not packed. Other third-party packages are packed only when asked for:

- ``vendor``: copied from the current environment, pure Python only (PyYAML's optional C accelerator is
  dropped: it falls back to pure Python). A compiled package is refused unless ``allow_local_compiled``
  says this machine's Python version and architecture are the function's.
- ``wheels``: wheel files for the function's runtime and architecture (``pip download --only-binary=:all:
  --platform manylinux2014_aarch64 --python-version 3.12 orjson``), unpacked into the zip.

:func:`check_import` imports the handler from the zip in a Lambda-like interpreter (standard library, the
zip and the runtime-provided packages only) and says what is missing. The same sources give the same bytes:
entries sorted, fixed timestamps and permissions, fixed compression level.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cms_dagster

HANDLER = "cms_dagster.collectors.lambda_handler.handler"
HANDLER_MODULE = HANDLER.rsplit(".", 1)[0]
HANDLER_FILE = HANDLER_MODULE.replace(".", "/") + ".py"
PACKAGE = "cms_dagster"
NOTE_NAME = "CMS_COLLECTOR_PACKAGE.txt"
# Sub-packages and modules of cms_dagster the function never imports (the Dagster wiring, the dashboard).
EXCLUDED_TOP_LEVEL = frozenset({"defs", "resources", "dashboard", "infra", "tests", "definitions.py"})
EXCLUDED_DIR_NAMES = frozenset({"__pycache__", "tests", ".pytest_cache", ".ruff_cache"})
INCLUDED_SUFFIXES = frozenset({".py", ".yaml", ".yml", ".json", ".sql", ".txt", ".csv"})
COMPILED_SUFFIXES = (".so", ".pyd", ".dylib")
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644
COMPRESS_LEVEL = 9
# Provided by the AWS Lambda Python runtime; never vendored.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
# Packages whose compiled parts are optional accelerators with a pure-Python fallback: dropped when vendored.
OPTIONAL_COMPILED = frozenset({"yaml"})


@dataclass(frozen=True)
class PackageOptions:
    """What goes into the zip besides cms_dagster, and whether to check that the handler imports."""

    vendor: tuple[str, ...] = ()
    wheels: tuple[str, ...] = ()
    allow_local_compiled: bool = False
    check_import: bool = True


@dataclass(frozen=True)
class PackageResult:
    path: Path
    sha256: str
    size: int
    entries: tuple[str, ...]

    def summary(self) -> str:
        return f"{self.path}\n  sha256 {self.sha256}\n  size   {self.size} bytes, {len(self.entries)} files"


def package_source_dir() -> Path:
    """The ``cms_dagster`` directory being packaged (the one this interpreter imports)."""
    return Path(cms_dagster.__file__).resolve().parent


def collect_package_files(source_dir: Path) -> dict[str, Path]:
    """Archive name -> file, for the cms_dagster package less the excluded parts."""
    files: dict[str, Path] = {}
    for path in sorted(source_dir.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(source_dir)
        if rel.parts[0] in EXCLUDED_TOP_LEVEL or EXCLUDED_DIR_NAMES.intersection(rel.parts[:-1]):
            continue
        if path.suffix not in INCLUDED_SUFFIXES:
            continue
        files[f"{PACKAGE}/{rel.as_posix()}"] = path
    return files


def collect_vendored_files(names: Iterable[str], *, allow_local_compiled: bool = False) -> dict[str, Path]:
    """Archive name -> file for top-level packages or modules importable here."""
    files: dict[str, Path] = {}
    for name in names:
        if name in RUNTIME_PROVIDED:
            raise ValueError(f"{name} is provided by the Lambda Python runtime: do not vendor it")
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ValueError(
                f"cannot vendor {name!r}: it is not importable here (install it, or check the name)"
            )
        origin = Path(spec.origin)
        root = origin.parent if spec.submodule_search_locations else None
        members = sorted(p for p in root.rglob("*") if p.is_file()) if root else [origin]
        compiled = [p for p in members if p.name.endswith(COMPILED_SUFFIXES)]
        if compiled and name not in OPTIONAL_COMPILED and not allow_local_compiled:
            raise ValueError(
                f"cannot vendor {name!r}: it contains compiled extensions ({', '.join(p.name for p in compiled[:3])}) "
                "built for this machine; pass a wheel for the function's runtime and architecture instead "
                "(--wheel, from `pip download --only-binary=:all: --platform manylinux2014_aarch64 "
                f"--python-version 3.12 {name}`), or --allow-local-compiled if this machine matches them"
            )
        for path in members:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            if (
                name in OPTIONAL_COMPILED
                and not allow_local_compiled
                and path.name.endswith(COMPILED_SUFFIXES)
            ):
                continue
            rel = path.relative_to(root.parent) if root else Path(path.name)
            files[rel.as_posix()] = path
    return files


def wheel_members(wheel: str | Path) -> dict[str, bytes]:
    """Archive name -> bytes of a wheel's importable files (its ``.dist-info`` kept, as pip would)."""
    path = Path(wheel)
    parts = path.name[: -len(".whl")].split("-") if path.name.endswith(".whl") else []
    if len(parts) < 5:
        raise ValueError(f"{path} is not a wheel file (name-version-python-abi-platform.whl)")
    platform = parts[-1]
    if platform != "any" and "linux" not in platform:
        raise ValueError(
            f"{path.name} is built for {platform}: the Lambda runtime needs a Linux wheel (manylinux)"
        )
    members: dict[str, bytes] = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.is_dir() or ".data/" in info.filename:
                continue
            members[info.filename] = zf.read(info)
    return members


def package_note(vendored: Sequence[str]) -> str:
    vendored_line = ", ".join(vendored) if vendored else "nothing (boto3 and the standard library suffice)"
    return (
        "CMS collector function package (built by `cms infra package`).\n"
        f"Handler: {HANDLER}\n"
        f"Contents: the {PACKAGE} package without {', '.join(sorted(EXCLUDED_TOP_LEVEL))}.\n"
        f"Vendored third-party packages: {vendored_line}.\n"
        f"Provided by the AWS Lambda Python runtime, not packed: {', '.join(RUNTIME_PROVIDED)}.\n"
        "Deterministic: entries sorted, timestamps 1980-01-01, mode 0644, deflate level 9.\n"
    )


def build_collector_zip(
    output: str | Path,
    *,
    source_dir: str | Path | None = None,
    vendor: Sequence[str] = (),
    wheels: Sequence[str | Path] = (),
    allow_local_compiled: bool = False,
) -> PackageResult:
    """Write the collector's deployment zip to ``output`` and return its path, SHA-256 and size."""
    source = Path(source_dir) if source_dir else package_source_dir()
    if not (source / "__init__.py").is_file():
        raise FileNotFoundError(f"{source} is not the cms_dagster package (no __init__.py)")
    members: dict[str, bytes] = {
        name: path.read_bytes() for name, path in collect_package_files(source).items()
    }
    extra: dict[str, bytes] = {
        name: path.read_bytes()
        for name, path in collect_vendored_files(vendor, allow_local_compiled=allow_local_compiled).items()
    }
    for wheel in wheels:
        extra.update(wheel_members(wheel))
    for name, data in extra.items():
        if name in members:
            raise ValueError(f"vendored file {name} collides with a packaged file")
        members[name] = data
    members[NOTE_NAME] = package_note([*vendor, *(Path(w).name for w in wheels)]).encode()

    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the mode below is honoured
            info.external_attr = FILE_MODE << 16
            zf.writestr(info, members[name], compresslevel=COMPRESS_LEVEL)
    tmp.replace(out)
    data = out.read_bytes()
    return PackageResult(
        path=out,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        entries=tuple(sorted(members)),
    )


def artifact_key(result: PackageResult) -> str:
    """Content-addressed key in the artifacts bucket: a changed package is a new key, so a new deploy."""
    return f"collector/cms-collector-{result.sha256[:16]}.zip"


def runtime_provided_dir(target: Path) -> Path:
    """A directory of links to this environment's copies of what the Lambda runtime provides (boto3...)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_PROVIDED:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin)
        source = origin.parent if spec.submodule_search_locations else origin
        link = target / source.name
        if not link.exists():
            os.symlink(source, link)
    return target


def check_import(
    zip_path: str | Path,
    module: str = HANDLER_MODULE,
    *,
    runtime: str = "python3.12",
    architecture: str = "arm64",
) -> tuple[bool, str]:
    """Import ``module`` from the unpacked zip in a Lambda-like interpreter: the standard library, the zip
    and the runtime-provided packages only (``python -I -S``). Returns (ok, message).

    It runs this machine's Python: a version or architecture difference with the function's runtime is
    not caught here.
    """
    handler_attr = HANDLER.rsplit(".", 1)[1] if module == HANDLER_MODULE else None
    with tempfile.TemporaryDirectory(prefix="cms-lambda-") as tmp:
        code_dir = Path(tmp) / "task"
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(code_dir)
        runtime_dir = runtime_provided_dir(Path(tmp) / "runtime")
        script = (
            "import importlib, sys\n"
            f"sys.path[:0] = [{str(code_dir)!r}, {str(runtime_dir)!r}]\n"
            f"m = importlib.import_module({module!r})\n"
            + (
                f"assert callable(getattr(m, {handler_attr!r}, None)), 'no callable {handler_attr}'\n"
                if handler_attr
                else ""
            )
        )
        proc = subprocess.run(
            [sys.executable, "-I", "-S", "-c", script],
            capture_output=True,
            text=True,
            cwd=tmp,
            timeout=120,
        )
    if proc.returncode == 0:
        return True, f"{module} imports with the standard library, the zip and {', '.join(RUNTIME_PROVIDED)}"
    last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    missing = re.search(r"No module named '([^']+)'", last)
    hint = ""
    if missing and not missing.group(1).startswith(PACKAGE):
        top = missing.group(1).split(".")[0]
        hint = f": {wheel_hint(top, runtime, architecture)}"
    return False, f"{module} does not import in a Lambda-like interpreter: {last}{hint}"


def wheel_hint(name: str, runtime: str = "python3.12", architecture: str = "arm64") -> str:
    """How to pack a third-party package the handler needs, for the function's runtime and architecture."""
    platform = "manylinux2014_aarch64" if architecture == "arm64" else "manylinux2014_x86_64"
    version = runtime.removeprefix("python")
    return (
        f"pack {name} for {runtime}/{architecture}: `pip download --only-binary=:all: --no-deps "
        f"--platform {platform} --python-version {version} -d wheels {name}` and pass "
        f"--wheel wheels/<the {name} wheel> (a pure-Python package: --vendor {name})"
    )


def handler_module_in(result: PackageResult) -> bool:
    """Whether the zip holds the handler's module (written by the collectors; may be missing early on)."""
    return HANDLER_FILE in result.entries
