"""Request and response values of the runtime, with the seed's names (slotted dataclasses)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: A chat message as the providers take it: ``{"role": ..., "content": ...}``.
Message = Mapping[str, Any]


@dataclass(slots=True)
class InterventionContext:
    """Per-conversation context carried with a request (the seed's name)."""

    session_id: str | None = None
    user_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class LLMConfig:
    """What to call: a model identifier (``provider/model``, route, alias or bare model id)."""

    model_identifier: str | None = None
    provider_id: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    system_prompt: str | None = None
    timeout_seconds: float | None = None
    #: overrides the providers' request_settings.deadline_seconds for this request
    deadline_seconds: float | None = None
    extra_params: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class LLMRequest:
    """One generation request: a prompt (text or chat messages), its config and context."""

    prompt_content: str | Sequence[Message]
    config: LLMConfig = field(default_factory=LLMConfig)
    initial_context: InterventionContext = field(default_factory=InterventionContext)
    record_prompt: bool | None = None
    #: who sent the request (the API token's name when it came through ``gwconfig serve``)
    caller: str | None = None

    def messages(self) -> list[dict[str, Any]]:
        """The prompt as a list of chat messages (system prompt first when configured)."""
        if isinstance(self.prompt_content, str):
            msgs: list[dict[str, Any]] = [{"role": "user", "content": self.prompt_content}]
        else:
            msgs = [dict(m) for m in self.prompt_content]
        if self.config.system_prompt:
            msgs.insert(0, {"role": "system", "content": self.config.system_prompt})
        return msgs

    def prompt_text(self) -> str:
        """The prompt flattened to text (for usage records and the mock provider)."""
        if isinstance(self.prompt_content, str):
            return self.prompt_content
        return "\n".join(str(m.get("content", "")) for m in self.prompt_content)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts reported by the provider (zeros when it reports none)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call made for a request: which target, the outcome, and how long it took."""

    provider_id: str
    model_id: str
    outcome: str  # "ok" or the error class name
    error: str | None
    latency_ms: float


@dataclass(slots=True)
class LLMResponse:
    """The answer: generated text, who answered, attempts made, token usage and latency."""

    generated_content: str
    provider_id: str
    model_id: str
    usage: Usage
    latency_ms: float
    attempts: tuple[Attempt, ...]
    finish_reason: str | None = None
    route: str | None = None
    session_id: str | None = None
    raw: Mapping[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ProviderResult:
    """What a provider returns for one successful call."""

    text: str
    usage: Usage
    finish_reason: str | None = None
    raw: Mapping[str, Any] | None = None
