from pathlib import Path

import pytest

from cms_dagster import settings
from cms_dagster.cli import main


def test_defaults_are_embedded_under_cms_home(tmp_path: Path) -> None:
    s = settings.load({"CMS_HOME": str(tmp_path)})
    assert s.is_embedded
    assert s.raw_url == str(tmp_path / "lake" / "raw")
    assert s.processed_url == str(tmp_path / "lake" / "processed")
    assert s.duckdb_path == tmp_path / "warehouse.duckdb"
    assert s.dagster_home == tmp_path / "dagster"
    assert (s.warehouse, s.llm, s.alert_channels) == ("duckdb", "offline", ("outbox",))


def test_s3_lake_gives_three_zones_under_the_prefix() -> None:
    s = settings.load(
        {"CMS_LAKE_URL": "s3://cms-lake/prod", "CMS_PROCESSED_URL": "s3://cms-processed/points"}
    )
    assert s.raw_url == "s3://cms-lake/prod/raw"
    assert s.processed_url == "s3://cms-processed/points"
    assert s.archive_url == "s3://cms-lake/prod/archive"
    assert not s.is_embedded


@pytest.mark.parametrize(
    ("var", "value", "hint"),
    [
        ("CMS_WAREHOUSE", "postgres", "duckdb"),
        ("CMS_LLM", "claude", "openai"),
        ("CMS_ALERT_CHANNELS", "outbox,pager", "webhook"),
    ],
)
def test_bad_choice_says_what_to_use(var: str, value: str, hint: str) -> None:
    with pytest.raises(ValueError, match=hint):
        settings.load({var: value})


def test_cms_config_masks_secrets(
    cms_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("SNOWFLAKE_PASSWORD", "hunter2-very-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abcdefghijklmnop1234")
    monkeypatch.setenv("CMS_INGEST_API_KEYS", "risk:k1-secret,ops:k2-secret")
    monkeypatch.setenv("CMS_WAREHOUSE", "snowflake")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "abcdefghijklmnop" not in out and "k1-secret" not in out
    assert "risk:****" in out and "****1234" in out
    assert "CMS_WAREHOUSE" in out and "snowflake" in out
    assert str(cms_home) in out


def test_cms_config_masks_secrets_inside_urls(
    cms_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("CMS_WEBHOOK_URL", "https://hooks.example.com/services/T000/B000/XyZsecretPathPart")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://svc-user:pa55word@llm.internal:8443/v1?token=abc123")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    for secret in ("XyZsecretPathPart", "Part", "T000", "svc-user", "pa55word", "abc123"):
        assert secret not in out
    assert "https://hooks.example.com/****" in out and "https://****@llm.internal:8443/****" in out


def test_every_setting_is_documented() -> None:
    doc = Path(__file__).resolve().parents[2].joinpath("docs", "configuration.md").read_text()
    missing = [s.env for s in settings.SETTINGS if f"`{s.env}`" not in doc]
    assert not missing, f"docs/configuration.md lacks {missing}"


def test_a_dbt_window_is_set_for_its_duration_and_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads of one process starting dbt builds at once each see their own window: the second waits."""
    import os
    import threading

    monkeypatch.delenv("CMS_DBT_WINDOW_START", raising=False)
    monkeypatch.setenv("CMS_DBT_WINDOW_END", "kept")
    first = {"window_start": "2026-11-16T06:00:00", "window_end": "2026-11-16T07:00:00"}
    second = {"window_start": "2026-11-16T07:00:00", "window_end": "2026-11-16T08:00:00"}
    inside, second_entered, seen = threading.Event(), threading.Event(), []

    def other() -> None:
        inside.wait()
        with settings.dbt_window(second):
            second_entered.set()
            seen.append(os.environ["CMS_DBT_WINDOW_START"])

    t = threading.Thread(target=other)
    t.start()
    with settings.dbt_window(first):
        inside.set()
        # without one window at a time the other thread would be in (and have changed the window) by now
        assert not second_entered.wait(0.5)
        assert os.environ["CMS_DBT_WINDOW_START"] == first["window_start"]
    t.join(5)
    assert seen == [second["window_start"]]
    # afterwards the process's own values are back: unset stays unset
    assert "CMS_DBT_WINDOW_START" not in os.environ and os.environ["CMS_DBT_WINDOW_END"] == "kept"
