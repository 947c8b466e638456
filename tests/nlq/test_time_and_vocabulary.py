"""Time phrases become UTC windows relative to the time asked, in the business time zone; the
ontology's names and synonyms become filters; the public question set is big enough and well formed."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

from cms_dagster.domain import Ontology, OntologyError
from cms_dagster.domain.model import default_path, parse_ontology
from cms_dagster.nlq import timephrase, vocabulary

AS_OF = dt.datetime(2026, 11, 18, 10, 30, tzinfo=dt.timezone.utc)  # a Wednesday
ROOT = Path(__file__).resolve().parents[2]


def _w(text: str, tz: str = "UTC") -> tuple[str, str]:
    w, _ = timephrase.find(text, AS_OF, tz)
    assert w is not None, text
    return w.start.strftime("%Y-%m-%d %H:%M"), w.end.strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize(
    "text, window",
    [
        ("failed in the last 2 hours", ("2026-11-18 08:30", "2026-11-18 10:30")),
        ("over the past three hours", ("2026-11-18 07:30", "2026-11-18 10:30")),
        ("in the last hour", ("2026-11-18 09:30", "2026-11-18 10:30")),
        ("today", ("2026-11-18 00:00", "2026-11-18 10:30")),
        ("yesterday", ("2026-11-17 00:00", "2026-11-18 00:00")),
        ("this week", ("2026-11-16 00:00", "2026-11-18 10:30")),
        ("last week", ("2026-11-09 00:00", "2026-11-16 00:00")),
        ("since 9am", ("2026-11-18 09:00", "2026-11-18 10:30")),
        ("since 09:15", ("2026-11-18 09:15", "2026-11-18 10:30")),
        ("since monday", ("2026-11-16 00:00", "2026-11-18 10:30")),
        ("on monday", ("2026-11-16 00:00", "2026-11-17 00:00")),
        ("on 2026-11-17", ("2026-11-17 00:00", "2026-11-18 00:00")),
        ("in the last 7 days", ("2026-11-11 10:30", "2026-11-18 10:30")),
    ],
)
def test_time_phrases_are_utc_windows_ending_at_the_time_asked(text: str, window: tuple[str, str]) -> None:
    assert _w(text) == window


def test_today_follows_the_business_time_zone() -> None:
    # 10:30 UTC is 19:30 in Tokyo: its business day began at 15:00 UTC the day before
    assert _w("today", "Asia/Tokyo") == ("2026-11-17 15:00", "2026-11-18 10:30")
    assert _w("since 9am", "Asia/Tokyo") == ("2026-11-18 00:00", "2026-11-18 10:30")


def test_a_window_that_has_not_started_is_an_error_not_an_empty_answer() -> None:
    with pytest.raises(timephrase.TimeError, match="has not started"):
        timephrase.find("since 11pm", AS_OF)


def test_names_ids_and_synonyms_of_the_ontology_become_filters(ontology: Ontology) -> None:
    terms = vocabulary.build(ontology)
    cases = {
        "forex jobs": ("asset_class", "fx"),
        "stocks runs": ("asset_class", "equities"),
        "the bond valuation job": ("job", "fixed_income.bond_valuation"),
        "equities end-of-day pricing": ("job", "equities.eod_pricing"),
        "reuters feed": ("provider", "refinitiv"),
        "the CME MDP 3.0 futures feed": ("feed", "cme-mdp"),
        "recon stages": ("stage_type", "reconciliation"),
        "the positions database": ("resource", "rds:positions-db"),
        "all queues": ("resource_kind", "sqs"),
    }
    for text, expected in cases.items():
        found, _ = vocabulary.match(text, terms)
        assert [(t.field, t.value) for t in found] == [expected], text


def test_market_data_is_not_mistaken_for_the_namespace_of_that_name(ontology: Ontology) -> None:
    found, _ = vocabulary.match("which market data feeds were delayed", vocabulary.build(ontology))
    assert found == []


def test_synonyms_of_unknown_entities_are_rejected_with_the_entry_named() -> None:
    doc = yaml.safe_load(default_path().read_text())
    doc["synonyms"]["provider:nobody"] = ["x"]
    with pytest.raises(OntologyError, match=r"synonyms\[provider:nobody\]"):
        parse_ontology(doc)
    doc = yaml.safe_load(default_path().read_text())
    doc["asset_classes"][0]["synonyms"] = "stocks"
    with pytest.raises(OntologyError, match=r"asset_classes\[equities\]\.synonyms"):
        parse_ontology(doc)


def test_the_public_question_set_covers_150_questions_with_gold_rows() -> None:
    gold = json.loads((ROOT / "benchmarks" / "nlq" / "gold.json").read_text())
    groups = yaml.safe_load((ROOT / "benchmarks" / "nlq" / "questions.yaml").read_text())
    assert len(gold) == sum(len(g["questions"]) for g in groups) >= 150
    assert sum(1 for g in gold if g["rows"]) >= 0.9 * len(gold)  # mostly non-empty answers
    kinds = {g["spec"]["kind"] for g in gold}
    assert kinds == {"runs", "stage_runs", "feeds", "outages", "resources", "metric"}
    metrics = {g["spec"]["metric"] for g in gold if g["spec"]["kind"] == "metric"}
    assert len(metrics) >= 12
