"""cfn-lint is clean on every template, and `cms infra validate` / `templates` report it like a user sees it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cms_dagster.infra.templates import STACKS, template_files, templates_dir
from cms_dagster.infra.validate import lint_template


@pytest.mark.slow
@pytest.mark.parametrize("template", [s.template for s in STACKS])
def test_template_is_cfn_lint_clean(template: str) -> None:
    findings = lint_template(templates_dir() / template)
    assert findings == [], "\n".join(str(f) for f in findings)


def test_every_template_file_is_a_stack_in_the_deploy_order() -> None:
    files = {p.name for p in template_files()}
    assert files == {s.template for s in STACKS}
    assert [s.key for s in STACKS] == ["storage", "alerting", "collector", "monitoring", "snowflake-access", "orchestrator"]


@pytest.mark.slow
def test_validate_fails_on_a_broken_template_and_names_rule_and_line(
    tmp_path: Path, cms, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(templates_dir() / "alerting.yaml", tmp_path / "alerting.yaml")
    (tmp_path / "broken.yaml").write_text(
        'AWSTemplateFormatVersion: "2010-09-09"\n'
        "Resources:\n"
        "  Bucket:\n"
        "    Type: AWS::S3::Bucket\n"
        "    Properties:\n"
        "      VersioningConfiguration:\n"
        "        Status: Sometimes\n"
    )
    assert cms("infra", "validate", "--templates-dir", str(tmp_path), "--region", "us-east-1") == 1
    out = capsys.readouterr().out
    assert f"ok   {tmp_path / 'alerting.yaml'}" in out
    assert f"FAIL {tmp_path / 'broken.yaml'}" in out
    assert "broken.yaml:7:" in out and "[E3030]" in out and "Sometimes" in out
    assert "1/2 templates clean" in out


def test_validate_passes_on_clean_templates(tmp_path: Path, cms, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(templates_dir() / "alerting.yaml", tmp_path / "alerting.yaml")
    assert cms("infra", "validate", "--templates-dir", str(tmp_path), "--region", "us-east-1") == 0
    assert "1/1 templates clean" in capsys.readouterr().out


def test_templates_lists_the_stacks_in_deploy_order(cms, capsys: pytest.CaptureFixture[str]) -> None:
    assert cms("infra", "templates") == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line[:1].isdigit()]
    assert [line.split()[1] for line in lines] == [
        "cms-<env>-storage",
        "cms-<env>-alerting",
        "cms-<env>-collector",
        "cms-<env>-monitoring",
        "cms-<env>-snowflake-access",
        "cms-<env>-orchestrator",
    ]


def test_a_missing_templates_dir_is_explained(
    tmp_path: Path, cms, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cms("infra", "validate", "--templates-dir", str(tmp_path / "nowhere")) == 1
    err = capsys.readouterr().err
    assert "templates not found" in err and "--templates-dir" in err
