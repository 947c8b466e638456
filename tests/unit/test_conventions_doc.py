from pathlib import Path

from cms_dagster.otel import conventions

DOC = (Path(__file__).resolve().parents[2] / "docs" / "semantic-conventions.md").read_text()


def test_business_metrics_match_the_document() -> None:
    for m in conventions.BUSINESS_METRICS.values():
        row = next((line for line in DOC.splitlines() if line.startswith(f"| `{m.name}` |")), None)
        assert row, f"{m.name} missing from docs/semantic-conventions.md"
        cells = [c.strip() for c in row.split("|")]
        assert cells[2] == m.kind and cells[3] == f"`{m.unit}`", row


def test_cloudwatch_metrics_and_incident_kinds_are_documented() -> None:
    for m in conventions.CLOUDWATCH_METRICS + conventions.CONFIG_METRICS:
        assert m.metric in DOC, m.metric
    for kind in conventions.INCIDENT_KINDS:
        assert f"| `{kind}` |" in DOC, kind
