"""OpenAI chat completions (also any OpenAI-compatible server: vLLM, Ollama, LiteLLM proxy ...)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson

from gwconfig.runtime.errors import ProviderResponseError
from gwconfig.runtime.messages import ANTHROPIC, OPENAI, ProviderResult, Usage, WireBody
from gwconfig.runtime.providers.base import FORWARDED_PARAMETERS, ProviderCall, StreamChunk
from gwconfig.runtime.providers.from_anthropic import chat_body
from gwconfig.runtime.providers.http import HTTPProvider
from gwconfig.runtime.providers.sse import RawEvent
from gwconfig.runtime.scrub import Scrubber, scrub_tree
from gwconfig.secrets.origin import DEFAULT_BASES


def _usage(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    prompt = data.get("prompt_tokens_details")
    completion = data.get("completion_tokens_details")
    return Usage(
        int(data.get("prompt_tokens") or 0),
        int(data.get("completion_tokens") or 0),
        int(prompt.get("cached_tokens") or 0) if isinstance(prompt, dict) else 0,
        int(completion.get("reasoning_tokens") or 0) if isinstance(completion, dict) else 0,
    )


#: connection parameters of the openai type and the headers they are sent as
_PARAM_HEADERS = (("organization", "openai-organization"), ("project", "openai-project"))


class OpenAIProvider(HTTPProvider):
    """``POST {api_base}/chat/completions`` with a bearer token."""

    provider_type = "openai"
    default_api_base = DEFAULT_BASES["openai"]
    requires_api_key = False  # local OpenAI-compatible servers (vLLM, Ollama) often need none

    def url(self, call: ProviderCall, endpoint: str = "chat/completions") -> str:
        """The URL of ``endpoint`` (chat completions, embeddings)."""
        return f"{self.api_base}/{endpoint}"

    def headers(self, call: ProviderCall) -> dict[str, str]:
        """Authentication, organisation and project headers."""
        headers = {}
        if call.api_key:
            headers["authorization"] = f"Bearer {call.api_key}"
        for param, header in _PARAM_HEADERS:
            value = self.config.params.get(param)
            if value:
                headers[header] = str(value)
        return headers

    def body(self, call: ProviderCall, stream: bool) -> dict[str, Any]:
        """The JSON request body: an OpenAI client's body as it sent it (only ``model``
        rewritten, the model's default parameters where the client gave none), an Anthropic
        client's translated (:func:`~gwconfig.runtime.providers.from_anthropic.chat_body`),
        else one built from the call."""
        wire = call.wire
        if wire is not None and wire.api == ANTHROPIC:  # an Anthropic client's: translated
            wire = WireBody(OPENAI, chat_body(wire.body, self.provider_type))
        if wire is not None and wire.api == OPENAI:
            body = dict(wire.body)
            body["model"] = call.model.model_id
            for name, value in call.model.parameters.items():
                if name in FORWARDED_PARAMETERS and name != "top_k":
                    if name == "max_tokens" and "max_completion_tokens" in body:
                        continue
                    body.setdefault(name, value)
            if stream:
                body["stream"] = True
                # the gateway needs the usage; the client gets it only when it asked
                body["stream_options"] = {
                    **(body.get("stream_options") or {}),
                    "include_usage": True,
                }
            else:
                body.pop("stream", None)
                body.pop("stream_options", None)
            return body
        body = {"model": call.model.model_id, "messages": call.messages}
        if call.tools is not None:
            body["tools"] = call.tools
        if call.tool_choice is not None:
            body["tool_choice"] = call.tool_choice
        opts = call.options()
        if "top_k" in opts and "top_k" not in call.extra:  # not an OpenAI parameter
            del opts["top_k"]
        body.update(opts)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def complete(self, call: ProviderCall) -> ProviderResult:
        """One chat completion."""
        data = await self.post_json(
            self.url(call), self.body(call, False), self.headers(call), call
        )
        try:
            choice = data["choices"][0]
            message = choice["message"]
            text = message.get("content") or ""
            calls = tuple(message.get("tool_calls") or ())
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ProviderResponseError("reply has no choices[0].message") from exc
        return ProviderResult(
            text,
            _usage(data.get("usage")) or Usage(),
            choice.get("finish_reason"),
            data,
            calls,
            None if call.wire is not None and call.wire.api != OPENAI else WireBody(OPENAI, data),
        )

    async def embed(self, call: ProviderCall) -> ProviderResult:
        """``POST {api_base}/embeddings``: the client's body, only ``model`` rewritten; the
        answer as it came."""
        body = dict(call.wire.body) if call.wire is not None else {}
        body["model"] = call.model.model_id
        url = self.url(call, "embeddings")
        data = await self.post_json(url, body, self.headers(call), call)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise ProviderResponseError("reply has no data list")
        return ProviderResult(
            "", _usage(data.get("usage")) or Usage(), None, data, (), WireBody(OPENAI, data)
        )

    async def stream(self, call: ProviderCall) -> AsyncIterator[StreamChunk]:
        """A streamed chat completion (server-sent events, ``data: [DONE]`` at the end).

        For an OpenAI client (``call.wire``) the upstream's events are relayed as they came,
        a chunk per read, only ``model`` rewritten (:class:`Relay`); otherwise a chunk per event
        in neutral fields. Either way every event is read for its usage, finish reason, text
        and tool calls, and what the model wrote (every string of each choice's ``delta``) is
        tested for the provider's secrets: events that hold one are scrubbed.
        """
        url, body, headers = self.url(call), self.body(call, True), self.headers(call)
        relay = Relay.of(call)
        scrubber = self.config.secrets.scrubber
        async with self.open_stream(url, body, headers, call) as resp:
            usage: Usage | None = None
            finish: str | None = None
            done = False
            batches = self.raw_events(resp, call)
            async for batch in batches:
                if relay is None:
                    for item in self._neutral(batch, scrubber):
                        if item is None:
                            done = True
                            break
                        piece, got, reason = item
                        usage, finish = got or usage, reason or finish
                        if piece.text or piece.tool_calls:
                            yield piece
                else:
                    chunk, done = relay.batch(self, batch, scrubber)
                    if chunk is not None:
                        usage = chunk.usage or usage
                        finish = chunk.finish_reason or finish
                        if chunk.native is not None or chunk.usage is not None:
                            yield chunk
                if done:
                    self.finished(resp)
                    break
            await batches.aclose()  # type: ignore[attr-defined]
            if not done and finish is None:  # cut off: the answer may be incomplete
                raise ProviderResponseError("the stream ended before a finish reason or [DONE]")
            if relay is None:
                yield StreamChunk("", usage or Usage(), finish)

    def _neutral(
        self, batch: list[RawEvent], scrubber: Scrubber
    ) -> Iterator[tuple[StreamChunk, Usage | None, str | None] | None]:
        """Per event: its text and tool-call deltas (scrubbed when they hold a secret), its
        usage and finish reason; None at ``[DONE]``."""
        for _name, data, _raw in batch:
            event = self.event(data)
            if event is None:
                yield None
                return
            text, finish = "", None
            deltas: list[Any] = []
            written: list[str] = []
            for choice in event.get("choices") or ():
                finish = choice.get("finish_reason") or finish
                delta = choice.get("delta")
                if delta:
                    _written(delta, written)
                    text += delta.get("content") or ""
                    deltas.extend(delta.get("tool_calls") or ())
            if written and scrubber.may_hold("".join(written).encode()):
                text, deltas = scrub_tree((text, deltas), scrubber)
            yield StreamChunk(text, tool_calls=tuple(deltas)), _usage(event.get("usage")), finish

    def event(self, data: bytes) -> dict[str, Any] | None:
        """One event's JSON object (None for ``[DONE]``); an error event raises."""
        if data[:1] != b"{" and data.strip() == b"[DONE]":
            return None
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ProviderResponseError("a streamed event is not JSON") from None
        if type(event) is not dict:
            raise ProviderResponseError("a streamed event is not an object")
        if "error" in event:
            raise self.stream_error(event["error"])
        return event


def _written(delta: dict[str, Any], out: list[str]) -> None:
    """What the model wrote in ``delta``: its strings, its other values as JSON."""
    for value in delta.values():
        if type(value) is str:
            out.append(value)
        elif value:
            out.append(orjson.dumps(value).decode())


class Relay:
    """An OpenAI client's stream relayed: its events as they came, ``model`` answered as the
    client named it (a byte-level rewrite when exact, else the event re-encoded)."""

    __slots__ = ("asked", "model")

    def __init__(self, model: Any, asked: bool) -> None:
        self.model = model
        #: whether the client asked for the usage chunk (``stream_options.include_usage``)
        self.asked = asked

    @classmethod
    def of(cls, call: ProviderCall) -> Relay | None:
        """The relay of ``call``'s stream, None when its client does not speak OpenAI's API."""
        wire = call.wire
        if wire is None or wire.api != OPENAI:
            return None
        options = wire.body.get("stream_options")
        asked = isinstance(options, dict) and options.get("include_usage") is True
        return cls(wire.body.get("model"), asked)

    def batch(
        self, provider: OpenAIProvider, batch: list[RawEvent], scrubber: Scrubber
    ) -> tuple[StreamChunk | None, bool]:
        """One read's events as one chunk (the events' bytes to relay, their text, tool-call
        deltas, usage and finish reason), and whether ``[DONE]`` was among them. An event that
        holds a secret gets the batch re-encoded, scrubbed; the usage-only chunk is relayed
        only when the client asked for it (its usage is the gateway's either way)."""
        kept: list[dict[str, Any]] = []
        raws: list[bytes] = []
        texts: list[str] = []
        calls: list[Any] = []
        written: list[str] = []
        usage: Usage | None = None
        finish: str | None = None
        done = False
        for _name, data, raw in batch:
            event = provider.event(data)
            if event is None:
                done = True
                break
            got = event.get("usage")
            if got is not None:
                usage = _usage(got) or usage
            choices = event.get("choices")
            if choices:
                for choice in choices:
                    finish = choice.get("finish_reason") or finish
                    delta = choice.get("delta")
                    if delta:
                        _written(delta, written)
                        content = delta.get("content")
                        if content:
                            texts.append(content)
                        deltas = delta.get("tool_calls")
                        if deltas:
                            calls.extend(deltas)
            elif got is not None and not self.asked:
                continue
            kept.append(event)
            raws.append(raw)
        if not kept:
            return (StreamChunk("", usage, finish) if usage is not None else None), done
        text = "".join(texts)
        if written and scrubber.may_hold("".join(written).encode()):
            native = b"".join([self.encode(scrub_tree(e, scrubber)) for e in kept])
            text, calls = scrub_tree((text, calls), scrubber)
        else:
            native = self.rewrite(kept, raws)
        return StreamChunk(text, usage, finish, tuple(calls), native, OPENAI), done

    def rewrite(self, events: list[dict[str, Any]], raws: list[bytes]) -> bytes:
        """The events' bytes (``raws``) with ``model`` rewritten: in place when every event's
        ``"model":<value>`` is its only ``"model"`` (as OpenAI writes it, no spaces) and all
        name the same model, else each event on its own (:meth:`rewrite_one`)."""
        blob = b"".join(raws)
        first = events[0].get("model")
        if all(e.get("model") == first for e in events):
            if first is None or first == self.model:
                return blob
            if isinstance(first, str):
                needle, n = b'"model":' + orjson.dumps(first), len(events)
                if blob.count(b'"model"') == n and blob.count(needle) == n:
                    return blob.replace(needle, b'"model":' + orjson.dumps(self.model))
        return b"".join([self.rewrite_one(e, r) for e, r in zip(events, raws, strict=True)])

    def rewrite_one(self, event: dict[str, Any], raw: bytes) -> bytes:
        """One event's bytes with ``model`` rewritten: in place when exact, else re-encoded."""
        model = event.get("model")
        if model is None or model == self.model:
            return raw
        if isinstance(model, str) and raw.count(b'"model"') == 1:
            needle = b'"model":' + orjson.dumps(model)
            if needle in raw:
                return raw.replace(needle, b'"model":' + orjson.dumps(self.model), 1)
        return self.encode(event)

    def encode(self, event: dict[str, Any]) -> bytes:
        """``event`` re-encoded, ``model`` as the client named it."""
        if "model" in event:
            event = {**event, "model": self.model}
        return b"data: " + orjson.dumps(event) + b"\n\n"


class AzureOpenAIProvider(OpenAIProvider):
    """Azure OpenAI: deployments in the URL, ``api-version`` query, ``api-key`` header."""

    provider_type = "azure_openai"
    default_api_base = ""
    requires_api_key = True
    default_api_version = "2024-10-21"

    def url(self, call: ProviderCall, endpoint: str = "chat/completions") -> str:
        """``{api_base}/openai/deployments/{deployment}/{endpoint}?api-version=...``."""
        deployment = call.model.parameters.get("deployment") or call.model.model_id
        version = self.config.api_version or self.default_api_version
        base = self.api_base.removesuffix("/openai")
        return f"{base}/openai/deployments/{deployment}/{endpoint}?api-version={version}"

    def headers(self, call: ProviderCall) -> dict[str, str]:
        """The ``api-key`` header."""
        return {"api-key": call.api_key} if call.api_key else {}
