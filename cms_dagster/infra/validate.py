"""Lint the CloudFormation templates with cfn-lint (its Python API, every rule it runs by default)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_REGIONS: tuple[str, ...] = ("us-east-1", "eu-west-1", "eu-west-2")


@dataclass(frozen=True)
class Finding:
    """One cfn-lint match: ``path:line:column: [rule] severity: message``."""

    path: str
    line: int
    column: int
    rule: str
    severity: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: [{self.rule}] {self.severity}: {self.message}"


def lint_template(path: str | Path, regions: Sequence[str] = DEFAULT_REGIONS) -> list[Finding]:
    """cfn-lint findings (errors, warnings and informational) for one template, for the given regions."""
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(Path(path), config=ManualArgs(regions=list(regions)))
    return [
        Finding(
            path=str(path),
            line=int(m.linenumber),
            column=int(m.columnnumber),
            rule=str(m.rule.id),
            severity=str(m.rule.severity),
            message=str(m.message),
        )
        for m in matches
    ]


def lint_templates(
    paths: Iterable[str | Path], regions: Sequence[str] = DEFAULT_REGIONS
) -> dict[str, list[Finding]]:
    """Findings per template path (an empty list for a clean template)."""
    return {str(p): lint_template(p, regions) for p in paths}
