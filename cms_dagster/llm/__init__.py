"""The LLM adapter (OpenAI or the offline engine) behind one call: ``structured(system, user, schema, name)``.

    from cms_dagster import settings
    from cms_dagster.llm import from_settings

    llm = from_settings(settings.load())
    result = llm.structured(system, user, schema, "incident_narrative", offline=lambda: template(pack))
    result.data, result.usage.total_tokens, result.cached
"""

from cms_dagster.llm.engine import (
    Llm,
    LlmAnswerError,
    LlmBudgetError,
    LlmError,
    LlmResult,
    LlmUnavailableError,
    OfflineLlm,
    OpenAiLlm,
    ResultCache,
    Usage,
    estimate_tokens,
    from_settings,
    openai_client,
    request_key,
    validate_answer,
)

__all__ = [
    "Llm",
    "LlmAnswerError",
    "LlmBudgetError",
    "LlmError",
    "LlmResult",
    "LlmUnavailableError",
    "OfflineLlm",
    "OpenAiLlm",
    "ResultCache",
    "Usage",
    "estimate_tokens",
    "from_settings",
    "openai_client",
    "request_key",
    "validate_answer",
]
