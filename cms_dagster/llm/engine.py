"""The LLM adapter: one call, ``structured(system, user, json_schema, name)``, answered by OpenAI or offline.

- :class:`OpenAiLlm` sends a chat completion with structured output (``response_format`` ``json_schema``,
  ``strict``) through a real ``openai.OpenAI`` client (timeouts and retries are the client's), checks the
  answer against the schema and returns it with the token usage. Any OpenAI-compatible ``base_url`` works.
- :class:`OfflineLlm` (the embedded default) calls the caller's ``offline`` template, a function that builds
  the same schema's answer from the same data, and checks it the same way: no account, deterministic.

Both refuse a prompt past the token budget before anything is sent, and both answer a repeated request
(same engine, model, prompts and schema) from a cache keyed by its hash, so the same evidence is never paid
for twice. Errors are :class:`LlmError` subclasses with a one-line message that says what to do.

Plain Python; no Dagster (``cms_dagster.resources.llm`` wires it, recording usage in asset metadata).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

__all__ = [
    "LlmAnswerError",
    "LlmBudgetError",
    "LlmError",
    "LlmResult",
    "LlmUnavailableError",
    "Llm",
    "OfflineLlm",
    "OpenAiLlm",
    "Request",
    "ResultCache",
    "Usage",
    "estimate_tokens",
    "from_settings",
    "request_key",
    "validate_answer",
]


class LlmError(RuntimeError):
    """The LLM gave no usable answer; the message says why and what to do."""


class LlmUnavailableError(LlmError):
    """The service could not be reached, refused the request, or timed out after the client's retries."""


class LlmAnswerError(LlmError):
    """The service answered, but not with JSON that fits the schema (or it refused)."""


class LlmBudgetError(LlmError):
    """The request would exceed the token budget: nothing was sent."""


@dataclass(frozen=True)
class Usage:
    """Tokens a call used (zero for the offline engine and for answers from the cache)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class LlmResult:
    """A schema-valid answer, who gave it and what it cost."""

    data: dict[str, Any]
    engine: str  # "openai" or "offline"
    model: str
    usage: Usage = field(default_factory=Usage)
    cached: bool = False
    key: str = ""  # the request's hash (cache key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "model": self.model,
            "cached": self.cached,
            "key": self.key,
            **self.usage.to_dict(),
        }


def estimate_tokens(text: str) -> int:
    """A safe over-estimate of the tokens in ``text`` (about 3.5 characters a token for English and JSON)."""
    return math.ceil(len(text) / 3.5)


def request_key(engine: str, model: str, system: str, user: str, json_schema: Mapping[str, Any], name: str) -> str:
    """The hash that identifies a request: same engine, model, prompts and schema = same answer."""
    blob = json.dumps([engine, model, system, user, json_schema, name], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def validate_answer(data: Any, json_schema: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``data`` if it is an object that fits the schema, else LlmAnswerError naming the first problem."""
    if not isinstance(data, dict):
        raise LlmAnswerError(f"the {name} answer is not a JSON object")
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(json_schema).iter_errors(data))
    if err is not None:
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise LlmAnswerError(f"the {name} answer does not fit its schema at {where}: {err.message[:200]}")
    return data


class ResultCache:
    """Answers by request hash: in memory, and as JSON files under ``directory`` when one is given."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._memory: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        if key in self._memory:
            return self._memory[key]
        if self.directory is not None:
            path = self.directory / f"{key}.json"
            try:
                entry = json.loads(path.read_text())
            except (OSError, ValueError):
                return None
            self._memory[key] = entry
            return entry
        return None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self._memory[key] = entry
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.directory / f".{key}.tmp"
            tmp.write_text(json.dumps(entry, sort_keys=True))
            tmp.replace(self.directory / f"{key}.json")


@dataclass(frozen=True)
class Request:
    """A request not answered from the cache: the prompts, the schema and its name, the tokens left for the
    answer, and the caller's offline template (None when it has none)."""

    system: str
    user: str
    json_schema: Mapping[str, Any]
    name: str
    room: int
    offline: Callable[[], dict[str, Any]] | None


class Llm:
    """What callers code against (build one with :func:`from_settings`): a cached, budgeted, schema-checked
    ``structured`` call; an engine answers the requests that are not in the cache (:meth:`_answer`)."""

    engine = ""

    def __init__(self, model: str, max_tokens: int, cache: ResultCache | None) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.cache = cache if cache is not None else ResultCache()

    def _from_cache(self, key: str) -> LlmResult | None:
        hit = self.cache.get(key)
        if hit is None:
            return None
        return LlmResult(data=hit["data"], engine=self.engine, model=hit["model"], cached=True, key=key)

    def _budget(self, system: str, user: str, json_schema: Mapping[str, Any], max_tokens: int | None) -> int:
        budget = max_tokens or self.max_tokens
        prompt = estimate_tokens(system) + estimate_tokens(user) + estimate_tokens(json.dumps(json_schema))
        if prompt >= budget:
            raise LlmBudgetError(
                f"the prompt is about {prompt} tokens, over the budget of {budget}: send less evidence or "
                "raise CMS_LLM_MAX_TOKENS"
            )
        return budget - prompt

    def structured(
        self,
        system: str,
        user: str,
        json_schema: Mapping[str, Any],
        name: str,
        *,
        offline: Callable[[], dict[str, Any]] | None = None,
        max_tokens: int | None = None,
    ) -> LlmResult:
        """The cached answer to this request, or a new one (within the token budget, checked against the
        schema, then cached)."""
        key = request_key(self.engine, self.model, system, user, json_schema, name)
        hit = self._from_cache(key)
        if hit is not None:
            return hit
        room = self._budget(system, user, json_schema, max_tokens)
        data, model, used = self._answer(Request(system, user, json_schema, name, room, offline))
        data = validate_answer(data, json_schema, name)
        self.cache.put(key, {"data": data, "model": model})
        return LlmResult(data=data, engine=self.engine, model=model, usage=used, key=key)

    def _answer(self, request: Request) -> tuple[Any, str, Usage]:
        """(the answer, the model that gave it, tokens used) for a request not in the cache."""
        raise NotImplementedError


class OfflineLlm(Llm):
    """The deterministic engine: the caller's template answers, checked against the same schema."""

    engine = "offline"

    def __init__(self, model: str = "offline-templates", max_tokens: int = 6000, cache: ResultCache | None = None):
        super().__init__(model, max_tokens, cache)

    def _answer(self, request: Request) -> tuple[Any, str, Usage]:
        if request.offline is None:
            raise LlmUnavailableError(
                f"the offline engine has no template for {request.name}: set CMS_LLM=openai (and OPENAI_API_KEY)"
            )
        return request.offline(), self.model, Usage()


class OpenAiLlm(Llm):
    """OpenAI (or any compatible endpoint) through an ``openai.OpenAI`` client the caller built."""

    engine = "openai"

    def __init__(self, client: Any, model: str, max_tokens: int = 6000, cache: ResultCache | None = None):
        super().__init__(model, max_tokens, cache)
        self.client = client

    def _answer(self, request: Request) -> tuple[Any, str, Usage]:
        import openai

        system, user, json_schema, name, room = (
            request.system, request.user, request.json_schema, request.name, request.room
        )

        try:
            response = self.client.chat.completions.create(
                model=self.model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": name, "schema": dict(json_schema), "strict": True},
                },
                max_completion_tokens=room,
                temperature=0,
            )
        except openai.APITimeoutError:
            raise LlmUnavailableError(
                f"OpenAI did not answer within the timeout, after the client's retries (model {self.model}): "
                "try again, or raise CMS_LLM_TIMEOUT_S / CMS_LLM_MAX_RETRIES"
            ) from None
        except openai.AuthenticationError:
            raise LlmUnavailableError("OpenAI refused the API key: check OPENAI_API_KEY") from None
        except openai.APIStatusError as exc:
            raise LlmUnavailableError(
                f"OpenAI answered HTTP {exc.status_code} for model {self.model}: {_short(exc.message)}"
            ) from None
        except openai.APIConnectionError:
            raise LlmUnavailableError(
                "could not reach the OpenAI API: check OPENAI_BASE_URL and the network"
            ) from None
        usage = getattr(response, "usage", None)
        used = Usage(
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        )
        if not response.choices:
            raise LlmAnswerError(f"the {name} answer has no choices")
        choice = response.choices[0]
        message = choice.message
        if getattr(message, "refusal", None):
            raise LlmAnswerError(f"the model refused the {name} request: {_short(message.refusal)}")
        if choice.finish_reason == "length":
            raise LlmAnswerError(f"the {name} answer was cut at the token budget ({room} tokens for it)")
        try:
            data = json.loads(message.content or "")
        except ValueError:
            raise LlmAnswerError(f"the {name} answer is not JSON: {_short(message.content or '(empty)')}") from None
        return data, getattr(response, "model", None) or self.model, used


def _short(text: Any, n: int = 160) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def openai_client(settings: Any) -> Any:
    """A real ``openai.OpenAI`` client from the settings (key, base URL, timeout and retries)."""
    import openai

    if not settings.openai_api_key:
        raise LlmUnavailableError("CMS_LLM=openai needs OPENAI_API_KEY (or set CMS_LLM=offline)")
    return openai.OpenAI(
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url or None,
        timeout=settings.llm_timeout_s,
        max_retries=settings.llm_max_retries,
    )


def cache_dir(settings: Any) -> Path:
    """Where answers are cached by request hash (under CMS_HOME)."""
    return Path(settings.home) / "cache" / "llm"


def from_settings(settings: Any, *, client: Any = None, cache: ResultCache | None = None) -> Llm:
    """The engine ``CMS_LLM`` selects: :class:`OfflineLlm`, or :class:`OpenAiLlm` with ``client`` (default: one
    built by :func:`openai_client`). Answers are cached under CMS_HOME unless ``cache`` is given."""
    cache = cache if cache is not None else ResultCache(cache_dir(settings))
    if settings.llm == "openai":
        return OpenAiLlm(
            client if client is not None else openai_client(settings),
            model=settings.llm_model,
            max_tokens=settings.llm_max_tokens,
            cache=cache,
        )
    return OfflineLlm(max_tokens=settings.llm_max_tokens, cache=cache)
