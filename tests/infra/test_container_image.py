"""The code location's image, checked without a Docker engine: pinned dependencies that cover the
package's, a non-root user, the dbt manifest prepared at build time from what the build context holds."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
LOCK = ROOT / "infra" / "docker" / "requirements.lock"


def _name(req: str) -> str:
    return re.split(r"[\[<>=!~; ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def _project_dependencies() -> list[str]:
    text = (ROOT / "pyproject.toml").read_text()
    block = text.split("\ndependencies = [", 1)[1].split("\n]", 1)[0]
    return [m.group(1) for m in re.finditer(r'^\s*"([^"]+)"', block, re.M)]


def test_every_dependency_is_pinned_in_the_lock_and_the_lock_covers_the_package() -> None:
    pins = [ln for ln in LOCK.read_text().splitlines() if ln and not ln.startswith((" ", "#"))]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[^\s=]+", p) for p in pins), [p for p in pins if "==" not in p][:5]
    pinned = {_name(p) for p in pins}
    missing = [d for d in _project_dependencies() if _name(d) not in pinned]
    assert not missing, f"infra/docker/requirements.lock lacks {missing}: run `make lock`"


def test_the_image_runs_as_a_non_root_user_from_pinned_bases() -> None:
    steps = _instructions()
    bases = [rest.split()[0] for op, rest in steps if op == "FROM"]
    assert bases and all(re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", b) for b in bases), bases
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM"):]
    users = [rest for op, rest in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any(op == "RUN" and "useradd --uid 10001" in rest for op, rest in final)


def test_the_image_serves_the_code_location_module() -> None:
    module = re.search(r'^module_name = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    (cmd,) = [rest for op, rest in _instructions() if op == "CMD"]
    assert '"dagster", "api", "grpc"' in cmd and f'"--module-name", "{module}"' in cmd


def _ignored(rel: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(rel, p) or rel.startswith(p.rstrip("/") + "/") for p in patterns)


@pytest.mark.slow
def test_the_dbt_manifest_is_prepared_at_build_time_from_the_build_context(tmp_path: Path) -> None:
    """Copy what the Dockerfile's build stage copies (less .dockerignore) and run its prepare step."""
    patterns = [p for p in (ROOT / ".dockerignore").read_text().split() if p]
    context = tmp_path / "context"
    copies = [rest.split() for op, rest in _instructions() if op == "COPY" and "--from" not in rest]
    for *sources, _dest in copies:
        for src in sources:
            path = ROOT / src
            assert path.exists(), f"COPY {src}: not in the repository"
            target = context / src
            if path.is_dir():
                shutil.copytree(path, target, ignore=lambda d, names: [
                    n for n in names if _ignored(str((Path(d) / n).relative_to(ROOT)), patterns)
                ])
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
    assert not (context / "dbt_project" / "target").exists()  # nothing prepared comes from the host
    prepare = [rest for op, rest in _instructions() if op == "RUN" and "cms dbt prepare" in rest]
    assert prepare, "the build stage must prepare the dbt manifest"
    env = {**os.environ, "CMS_DBT_PROJECT_DIR": str(context / "dbt_project"), "DO_NOT_TRACK": "1", "CMS_HOME": str(tmp_path / "home")}
    out = subprocess.run([str(Path(sys.executable).parent / "cms"), "dbt", "prepare"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (context / "dbt_project" / "target" / "manifest.json").stat().st_size > 10_000


def test_local_state_stays_out_of_the_build_context() -> None:
    patterns = (ROOT / ".dockerignore").read_text().split()
    for local in (".venv", ".cms", ".git", "dbt_project/target"):
        assert _ignored(local, patterns), local
