"""The provider interface every implementation (built-in or plugin) follows."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gwconfig.runtime.config.gateway import ProviderConfig
from gwconfig.runtime.config.table import ModelConfig
from gwconfig.runtime.errors import UnsupportedParameterError
from gwconfig.runtime.messages import ProviderResult, Usage, WireBody

#: Request parameters that may be given as a model's defaults in ``parameters`` and are sent.
FORWARDED_PARAMETERS = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "response_format",
        "max_tokens",
    }
)


@dataclass(slots=True)
class ProviderCall:
    """One call to make: the model, chat messages, generation options and the API key to use."""

    model: ModelConfig
    messages: list[dict[str, Any]]
    api_key: str | None = field(default=None, repr=False)
    max_tokens: int | None = None
    temperature: float | None = None
    timeout_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: when the request's deadline passes (``time.monotonic()``); None: no deadline
    deadline: float | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    #: the client's body as sent (see :attr:`LLMRequest.wire`)
    wire: WireBody | None = field(default=None, repr=False)

    def options(self) -> dict[str, Any]:
        """Generation options: the model's defaults, overridden by the request's."""
        opts = {k: v for k, v in self.model.parameters.items() if k in FORWARDED_PARAMETERS}
        if self.max_tokens is not None:
            opts["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            opts["temperature"] = self.temperature
        opts.update(self.extra)
        return opts

    def prompt_text(self) -> str:
        """The messages' contents joined (what the mock provider echoes)."""
        return "\n".join(
            str(m.get("content", "")) for m in self.messages if m.get("role") != "system"
        )


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """A piece of a streamed answer: text and, at the end, usage and finish reason."""

    text: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None
    #: tool-call deltas (OpenAI's ``delta.tool_calls`` shape)
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    #: the upstream's event as received (whole SSE event bytes) and its API, for a client of
    #: the same API to get it relayed without re-encoding
    native: bytes | None = field(default=None, repr=False)
    api: str | None = None


class BaseProvider(ABC):
    """A provider implementation; one instance per configured provider, shared by requests."""

    provider_type: ClassVar[str] = ""
    #: Whether calls need an API key (the client refuses to call without one).
    requires_api_key: ClassVar[bool] = True
    #: Whether the provider itself stops a call at ``ProviderCall.deadline`` (raising
    #: DeadlineExceededError); otherwise the client bounds each call with ``asyncio.timeout``.
    enforces_deadline: ClassVar[bool] = False

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @abstractmethod
    async def complete(self, call: ProviderCall) -> ProviderResult:
        """Send one non-streaming request; raise a ProviderError subclass on failure."""

    @abstractmethod
    def stream(self, call: ProviderCall) -> AsyncIterator[StreamChunk]:
        """Send one streaming request, yielding chunks (errors before the first can fall back)."""

    async def embed(self, call: ProviderCall) -> ProviderResult:
        """Embed the inputs of an OpenAI embeddings body (``call.wire``); a provider type
        without an embeddings API refuses (400)."""
        raise UnsupportedParameterError(
            f"provider type '{self.provider_type}' has no embeddings API (provider "
            f"'{self.config.provider_id}')"
        )

    async def count_tokens(self, call: ProviderCall) -> ProviderResult:
        """Count the input tokens of an Anthropic Messages body (``call.wire``); a provider type
        without a token counting API refuses (400)."""
        raise UnsupportedParameterError(
            f"provider type '{self.provider_type}' has no token counting API (provider "
            f"'{self.config.provider_id}'); /v1/messages/count_tokens needs an 'anthropic' model"
        )

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections (called when the provider is no longer used)."""
