"""`cms infra package`: a reproducible zip of the cms_dagster code that imports in a Lambda-like interpreter."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from cms_dagster.infra.package import (
    HANDLER_FILE,
    HANDLER_MODULE,
    NOTE_NAME,
    artifact_key,
    build_collector_zip,
    check_import,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    return build_collector_zip(tmp_path_factory.mktemp("pkg") / "cms-collector.zip")


def test_same_sources_give_the_same_bytes(built, tmp_path: Path) -> None:
    again = build_collector_zip(tmp_path / "again.zip")
    assert again.sha256 == built.sha256
    assert again.path.read_bytes() == built.path.read_bytes()
    assert built.sha256 == hashlib.sha256(built.path.read_bytes()).hexdigest()
    assert built.size == built.path.stat().st_size


def test_entries_are_sorted_with_fixed_timestamps_and_modes(built) -> None:
    with zipfile.ZipFile(built.path) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names) == list(built.entries)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}
    assert {i.compress_type for i in infos} == {zipfile.ZIP_DEFLATED}


def test_zip_holds_the_library_code_but_not_dagster_wiring(built) -> None:
    names = set(built.entries)
    for needed in (
        "cms_dagster/__init__.py",
        "cms_dagster/settings.py",
        "cms_dagster/lake/__init__.py",
        "cms_dagster/lake/layout.py",
        "cms_dagster/lake/zone.py",
        "cms_dagster/lake/aws.py",
    ):
        assert needed in names
    assert any(n.startswith("cms_dagster/otel/") for n in names)
    assert any(n.startswith("cms_dagster/collectors/") for n in names)
    assert "cms_dagster/domain/estate.yaml" in names, "package data travels with the code"
    for name in names:
        assert not name.startswith(
            ("cms_dagster/defs/", "cms_dagster/resources/", "cms_dagster/dashboard/", "cms_dagster/infra/")
        ), name
        assert "__pycache__" not in name and not name.endswith(".pyc"), name
    assert "cms_dagster/definitions.py" not in names
    assert not any(n.startswith(("boto3/", "botocore/")) for n in names), "the Lambda runtime provides boto3"


def test_zip_carries_a_note_on_what_the_runtime_provides(built) -> None:
    with zipfile.ZipFile(built.path) as zf:
        note = zf.read(NOTE_NAME).decode()
    assert "cms_dagster.collectors.lambda_handler.handler" in note
    assert "boto3" in note and "Lambda Python runtime" in note


def test_artifact_key_changes_with_the_content(built) -> None:
    assert artifact_key(built) == f"collector/cms-collector-{built.sha256[:16]}.zip"


def test_library_modules_import_from_the_zip_with_only_the_runtimes_packages(built) -> None:
    for module in ("cms_dagster.settings", "cms_dagster.lake", "cms_dagster.otel.otlp"):
        ok, message = check_import(built.path, module)
        assert ok, message


def test_handler_imports_from_the_zip_in_a_lambda_like_interpreter(tmp_path: Path) -> None:
    # the collector's path needs nothing compiled (cms_dagster.lake.jsonio falls back to the standard library)
    result = build_collector_zip(tmp_path / "pure.zip")
    assert HANDLER_FILE in result.entries
    ok, message = check_import(result.path, HANDLER_MODULE)
    assert ok, message


def test_a_missing_third_party_module_is_named_with_the_fix(tmp_path: Path) -> None:
    source = tmp_path / "src" / "cms_dagster"
    source.mkdir(parents=True)
    (source / "__init__.py").write_text("")
    (source / "needs_orjson.py").write_text("import orjson\n")
    result = build_collector_zip(tmp_path / "x.zip", source_dir=source)
    ok, message = check_import(
        result.path, "cms_dagster.needs_orjson", runtime="python3.12", architecture="arm64"
    )
    assert not ok
    assert "No module named 'orjson'" in message
    assert "--platform manylinux2014_aarch64 --python-version 3.12" in message and "--wheel" in message


def test_vendoring_packs_pure_python_and_refuses_what_cannot_run_in_lambda(tmp_path: Path) -> None:
    result = build_collector_zip(tmp_path / "v.zip", vendor=["yaml", "idna"])
    names = set(result.entries)
    assert "yaml/__init__.py" in names and "idna/__init__.py" in names
    assert not any(n.endswith(".so") for n in names), (
        "PyYAML's C accelerator is dropped (pure-Python fallback)"
    )
    with zipfile.ZipFile(result.path) as zf:
        assert "yaml, idna" in zf.read(NOTE_NAME).decode()
    with pytest.raises(ValueError, match="compiled extensions"):
        build_collector_zip(tmp_path / "c.zip", vendor=["orjson"])
    with pytest.raises(ValueError, match="provided by the Lambda Python runtime"):
        build_collector_zip(tmp_path / "b.zip", vendor=["boto3"])
    with pytest.raises(ValueError, match="not importable here"):
        build_collector_zip(tmp_path / "n.zip", vendor=["no_such_package_cms"])


def test_wheels_for_linux_are_unpacked_into_the_zip(tmp_path: Path) -> None:
    wheel = tmp_path / "tinydep-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("tinydep/__init__.py", "VALUE = 42\n")
        zf.writestr("tinydep-1.0.dist-info/METADATA", "Name: tinydep\n")
    result = build_collector_zip(tmp_path / "w.zip", wheels=[wheel])
    assert {"tinydep/__init__.py", "tinydep-1.0.dist-info/METADATA"} <= set(result.entries)
    ok, message = check_import(result.path, "tinydep")
    assert ok, message
    mac = tmp_path / "tinydep-1.0-cp312-cp312-macosx_11_0_arm64.whl"
    mac.write_bytes(wheel.read_bytes())
    with pytest.raises(ValueError, match="needs a Linux wheel"):
        build_collector_zip(tmp_path / "m.zip", wheels=[mac])


def test_cli_prints_path_sha256_and_size(
    tmp_path: Path, cms, capsys: pytest.CaptureFixture[str], aws_env
) -> None:
    out_zip = tmp_path / "dist" / "collector.zip"
    assert cms("infra", "package", "--output", str(out_zip), "--skip-import-check") == 0
    out = capsys.readouterr().out
    digest = hashlib.sha256(out_zip.read_bytes()).hexdigest()
    assert str(out_zip) in out
    assert f"sha256 {digest}" in out
    assert f"size   {out_zip.stat().st_size} bytes" in out


def test_cli_default_output_is_under_cms_home(
    tmp_path: Path, cms, capsys: pytest.CaptureFixture[str], aws_env
) -> None:
    assert cms("infra", "package", "--skip-import-check") == 0
    assert (tmp_path / "cms-home" / "build" / "cms-collector.zip").is_file()


def test_cli_checks_that_the_handler_imports(
    tmp_path: Path, cms, capsys: pytest.CaptureFixture[str], aws_env
) -> None:
    out_zip = tmp_path / "c.zip"
    rc = cms("infra", "package", "--output", str(out_zip))
    captured = capsys.readouterr()
    ok, message = check_import(out_zip, HANDLER_MODULE)
    assert ok, message  # the collector's handler imports from the zip, in a Lambda-like interpreter
    assert rc == 0 and message in captured.out
