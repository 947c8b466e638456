"""The LLM as a Dagster resource: dagster-openai's ``OpenAIResource`` (which records each call's token usage
in the asset's materialization metadata) plus the CMS engine choice, model, budget, timeout and retries.

    @dg.asset
    def report(context: dg.AssetExecutionContext, llm: LlmResource):
        with llm.adapter(context) as engine:     # a cms_dagster.llm.Llm
            engine.structured(system, user, schema, "incident_narrative", offline=...)

Fields left unset fall back to the environment (docs/configuration.md); set ones are bound with
``dg.EnvVar`` by :func:`cms_dagster.resources.build_resources`, so secrets never show in the UI.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster_openai import OpenAIResource
from openai import Client
from pydantic import Field

from cms_dagster import settings as settings_mod
from cms_dagster.llm import Llm, LlmUnavailableError, OfflineLlm, OpenAiLlm, ResultCache
from cms_dagster.llm.engine import cache_dir

# resource field -> environment variable it overrides
LLM_FIELDS = {
    "engine": "CMS_LLM",
    "model": "CMS_LLM_MODEL",
    "api_key": "OPENAI_API_KEY",
    "base_url": "OPENAI_BASE_URL",
    "max_tokens": "CMS_LLM_MAX_TOKENS",
    "timeout_s": "CMS_LLM_TIMEOUT_S",
    "max_retries": "CMS_LLM_MAX_RETRIES",
    "cms_home": "CMS_HOME",
}


class LlmResource(OpenAIResource):
    """OpenAI (``engine=openai``) or the offline engine (the embedded default), with usage in asset metadata."""

    api_key: str = Field(default="", description="OpenAI API key (OPENAI_API_KEY); unused offline")
    engine: str | None = Field(default=None, description="offline or openai (CMS_LLM)")
    model: str | None = Field(default=None, description="model name (CMS_LLM_MODEL)")
    max_tokens: str | None = Field(default=None, description="token budget per call (CMS_LLM_MAX_TOKENS)")
    timeout_s: str | None = Field(default=None, description="request timeout in seconds (CMS_LLM_TIMEOUT_S)")
    max_retries: str | None = Field(default=None, description="client retries (CMS_LLM_MAX_RETRIES)")
    cms_home: str | None = Field(default=None, description="where answers are cached (CMS_HOME)")

    def settings(self) -> settings_mod.Settings:
        return settings_mod.load(overrides={var: getattr(self, f) for f, var in LLM_FIELDS.items()})

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        s = self.settings()
        self._client = None
        if s.llm == "openai" and s.openai_api_key:
            self._client = Client(
                api_key=s.openai_api_key,
                organization=self.organization,
                project=self.project,
                base_url=s.openai_base_url or None,
                timeout=s.llm_timeout_s,
                max_retries=s.llm_max_retries,
            )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()

    @contextmanager
    def adapter(self, context: Any) -> Iterator[Llm]:
        """The engine for this run; with OpenAI, calls made through it add their tokens to the asset's metadata."""
        s = self.settings()
        cache = ResultCache(cache_dir(s))
        if s.llm != "openai":
            yield OfflineLlm(max_tokens=s.llm_max_tokens, cache=cache)
            return
        if self._client is None:
            raise LlmUnavailableError("CMS_LLM=openai needs OPENAI_API_KEY (or set CMS_LLM=offline)")
        with self.get_client(context) as client:
            yield OpenAiLlm(client, model=s.llm_model, max_tokens=s.llm_max_tokens, cache=cache)
