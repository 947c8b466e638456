"""The LLM adapter against a stand-in that speaks the OpenAI API over HTTP, with the real openai client."""

import json
from pathlib import Path

import dagster as dg
import openai
import pytest

from cms_dagster import settings as settings_mod
from cms_dagster.llm import (
    LlmAnswerError,
    LlmBudgetError,
    LlmUnavailableError,
    OfflineLlm,
    OpenAiLlm,
    ResultCache,
    from_settings,
)
from cms_dagster.resources.llm import LlmResource
from cms_harness.openai_standin import OpenAiStandIn, Step

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["summary", "confidence"],
    "properties": {
        "summary": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
}
GOOD = {"summary": "feed cme-mdp stopped at 09:30", "confidence": 0.8}


def client(api: OpenAiStandIn, **kw) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout", 5)
    return openai.OpenAI(api_key=api.api_key, base_url=api.base_url, **kw)


def test_openai_answer_arrives_schema_checked_with_token_usage():
    with OpenAiStandIn(answer=lambda req: GOOD) as api:
        llm = OpenAiLlm(client(api), model="gpt-test")
        res = llm.structured("you explain incidents", "evidence: ...", SCHEMA, "narrative")
    assert res.data == GOOD
    assert res.engine == "openai" and res.model == "gpt-test" and not res.cached
    assert res.usage.prompt_tokens > 0 and res.usage.total_tokens == res.usage.prompt_tokens + res.usage.completion_tokens
    sent = api.requests[0]
    assert sent["model"] == "gpt-test"
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"] == {"name": "narrative", "schema": SCHEMA, "strict": True}
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]


def test_same_evidence_is_answered_from_the_cache_without_a_second_call(tmp_path: Path):
    with OpenAiStandIn(answer=lambda req: GOOD) as api:
        first = OpenAiLlm(client(api), model="gpt-test", cache=ResultCache(tmp_path))
        a = first.structured("sys", "evidence pack 1", SCHEMA, "narrative")
        # a new process (new adapter) finds the answer on disk
        second = OpenAiLlm(client(api), model="gpt-test", cache=ResultCache(tmp_path))
        b = second.structured("sys", "evidence pack 1", SCHEMA, "narrative")
        c = second.structured("sys", "evidence pack 2", SCHEMA, "narrative")
    assert b.cached and b.data == a.data and b.usage.total_tokens == 0
    assert not c.cached
    assert len(api.requests) == 2


def test_server_error_is_retried_by_the_client_then_answers():
    with OpenAiStandIn(answer=lambda req: GOOD, script=[Step(status=500)]) as api:
        llm = OpenAiLlm(client(api, max_retries=1), model="gpt-test")
        res = llm.structured("sys", "user", SCHEMA, "narrative")
    assert res.data == GOOD and len(api.requests) == 2


def test_persistent_server_error_says_what_happened():
    with OpenAiStandIn(script=[Step(status=503, message="overloaded")] * 3) as api:
        llm = OpenAiLlm(client(api, max_retries=1), model="gpt-test")
        with pytest.raises(LlmUnavailableError, match="HTTP 503"):
            llm.structured("sys", "user", SCHEMA, "narrative")


def test_timeout_gives_a_clear_error():
    with OpenAiStandIn(answer=lambda req: GOOD, script=[Step(delay=1.5)]) as api:
        llm = OpenAiLlm(client(api, timeout=0.3), model="gpt-test")
        with pytest.raises(LlmUnavailableError, match="timeout"):
            llm.structured("sys", "user", SCHEMA, "narrative")


def test_wrong_key_says_to_check_the_key():
    with OpenAiStandIn(answer=lambda req: GOOD) as api:
        bad = openai.OpenAI(api_key="wrong", base_url=api.base_url, max_retries=0)
        with pytest.raises(LlmUnavailableError, match="OPENAI_API_KEY"):
            OpenAiLlm(bad, model="gpt-test").structured("sys", "user", SCHEMA, "narrative")


@pytest.mark.parametrize(
    "step, message",
    [
        (Step(content="Sure! Here is the JSON: {"), "not JSON"),
        (Step(content=json.dumps({"summary": "x", "confidence": 7})), "confidence"),
        (Step(content=json.dumps({"summary": "x"})), "schema"),
        (Step(refusal="I can't help with that"), "refused"),
        (Step(content='{"summary": "x", "conf', finish_reason="length"), "cut"),
    ],
)
def test_malformed_answers_are_refused_and_not_cached(step: Step, message: str):
    with OpenAiStandIn(answer=lambda req: GOOD, script=[step]) as api:
        llm = OpenAiLlm(client(api), model="gpt-test")
        with pytest.raises(LlmAnswerError, match=message):
            llm.structured("sys", "user", SCHEMA, "narrative")
        # nothing bad was cached: the same request goes out again and gets the good answer
        assert llm.structured("sys", "user", SCHEMA, "narrative").data == GOOD
    assert len(api.requests) == 2


def test_prompt_over_the_token_budget_is_not_sent():
    with OpenAiStandIn(answer=lambda req: GOOD) as api:
        llm = OpenAiLlm(client(api), model="gpt-test", max_tokens=500)
        with pytest.raises(LlmBudgetError, match="CMS_LLM_MAX_TOKENS"):
            llm.structured("sys", "x" * 5000, SCHEMA, "narrative")
        llm.structured("sys", "short", SCHEMA, "narrative")
    assert len(api.requests) == 1
    assert 0 < api.requests[0]["max_completion_tokens"] < 500


def test_offline_engine_answers_from_the_template_and_checks_it():
    llm = OfflineLlm()
    res = llm.structured("sys", "user", SCHEMA, "narrative", offline=lambda: GOOD)
    assert res.data == GOOD and res.engine == "offline" and res.usage.total_tokens == 0
    with pytest.raises(LlmAnswerError, match="confidence"):
        llm.structured("sys", "other", SCHEMA, "narrative", offline=lambda: {"summary": "x", "confidence": "high"})
    with pytest.raises(LlmUnavailableError, match="CMS_LLM=openai"):
        llm.structured("sys", "user2", SCHEMA, "narrative")


def test_settings_choose_the_engine_model_and_client_limits(cms_home: Path, monkeypatch):
    assert from_settings(settings_mod.load()).engine == "offline"
    with OpenAiStandIn(answer=lambda req: GOOD) as api:
        env = {
            "CMS_HOME": str(cms_home),
            "CMS_LLM": "openai",
            "OPENAI_API_KEY": api.api_key,
            "OPENAI_BASE_URL": api.base_url,
            "CMS_LLM_MODEL": "gpt-from-settings",
            "CMS_LLM_TIMEOUT_S": "7",
            "CMS_LLM_MAX_RETRIES": "0",
        }
        s = settings_mod.load(env)
        llm = from_settings(s)
        assert llm.client.timeout == 7 and llm.client.max_retries == 0
        assert llm.structured("sys", "user", SCHEMA, "narrative").model == "gpt-from-settings"
    with pytest.raises(LlmUnavailableError, match="OPENAI_API_KEY"):
        from_settings(settings_mod.load({"CMS_LLM": "openai", "CMS_HOME": str(cms_home)}))
    with pytest.raises(ValueError, match="CMS_LLM_TIMEOUT_S"):
        settings_mod.load({"CMS_LLM_TIMEOUT_S": "soon"})


def test_dagster_resource_records_token_usage_in_asset_metadata(cms_home: Path, monkeypatch):
    @dg.asset
    def narrated(context: dg.AssetExecutionContext, llm: LlmResource) -> dg.MaterializeResult:
        with llm.adapter(context) as engine:
            res = engine.structured("sys", "evidence", SCHEMA, "narrative")
        return dg.MaterializeResult(metadata={"summary": res.data["summary"]})

    with OpenAiStandIn(answer=lambda req: GOOD) as api:
        resource = LlmResource(engine="openai", api_key=api.api_key, base_url=api.base_url, model="gpt-dg")
        result = dg.materialize([narrated], resources={"llm": resource})
    assert result.success
    mat = result.asset_materializations_for_node("narrated")[0]
    assert mat.metadata["summary"].value == GOOD["summary"]
    assert mat.metadata["openai.gpt-dg.calls"].value == 1
    assert mat.metadata["openai.gpt-dg.total_tokens"].value > 0
    assert api.requests[0]["model"] == "gpt-dg"


def test_dagster_resource_offline_needs_no_key(cms_home: Path):
    @dg.asset
    def narrated(context: dg.AssetExecutionContext, llm: LlmResource) -> dg.MaterializeResult:
        with llm.adapter(context) as engine:
            res = engine.structured("sys", "evidence", SCHEMA, "narrative", offline=lambda: GOOD)
        return dg.MaterializeResult(metadata={"engine": res.engine})

    result = dg.materialize([narrated], resources={"llm": LlmResource()})
    mat = result.asset_materializations_for_node("narrated")[0]
    assert mat.metadata["engine"].value == "offline"
