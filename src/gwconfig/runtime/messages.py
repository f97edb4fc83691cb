"""Request and response values of the runtime, with the seed's names (slotted dataclasses)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: A chat message as the providers take it: OpenAI's chat shape (``role``, ``content`` as text or
#: content parts, ``tool_calls``, ``tool_call_id``, ``name``).
Message = Mapping[str, Any]
#: The wire formats the gateway speaks: OpenAI chat completions and Anthropic Messages.
OPENAI = "openai"
ANTHROPIC = "anthropic"


@dataclass(frozen=True, slots=True)
class WireBody:
    """A body in the wire format of one API (``api``: :data:`OPENAI` or :data:`ANTHROPIC`), as
    the client sent it (gateway fields removed) or as the upstream answered it."""

    api: str
    body: Mapping[str, Any] = field(repr=False)


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
    #: the ``kind: Consumer`` of that token (None: a token without one, or in-process)
    consumer: str | None = None
    #: tools the model may call (OpenAI's ``tools`` shape) and how it may choose them
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    #: the client's body as sent (``gwconfig serve``): a provider speaking the same API sends it
    #: on with only ``model`` rewritten; any other provider translates it
    wire: WireBody | None = field(default=None, repr=False)
    #: the model capabilities the request needs (``function_calling``, ``vision`` ...)
    needs: frozenset[str] = frozenset()

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
    #: prompt tokens read from the provider's cache, completion tokens spent reasoning
    cached_tokens: int = 0
    reasoning_tokens: int = 0

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
    #: the tool calls of the answer (OpenAI's ``message.tool_calls`` shape)
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    #: the upstream's answer in its own API's format (passed through to a client of that API)
    wire: WireBody | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ProviderResult:
    """What a provider returns for one successful call."""

    text: str
    usage: Usage
    finish_reason: str | None = None
    raw: Mapping[str, Any] | None = None
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    wire: WireBody | None = None
