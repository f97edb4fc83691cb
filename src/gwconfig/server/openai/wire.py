"""OpenAI's wire format for ``/v1/chat/completions``: request parsing, answers, errors.

No web framework here: bytes in, :class:`ChatRequest` out (or a :class:`WireError` with the
OpenAI error shape and HTTP status); an :class:`LLMResponse` or stream pieces in, bytes out.
Every input is bounded (messages, text, stop words, numbers).
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from gwconfig.runtime.messages import (
    OPENAI,
    InterventionContext,
    LLMConfig,
    LLMRequest,
    LLMResponse,
    Usage,
    WireBody,
)
from gwconfig.server.answers import answer_for
from gwconfig.server.openai.content import parse_parts as _parts
from gwconfig.server.openai.content import parse_tools as _tools
from gwconfig.server.openai.errors import WireError, bad, json_body

MAX_MESSAGES = 2048
MAX_STOP_WORDS = 4
MAX_STOP_LENGTH = 256
MAX_TOKENS = 1_000_000
#: the longest ``messages[i].name`` (OpenAI's limit)
MAX_NAME = 64
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
#: the most choices (``n``) and ``top_logprobs`` one request may ask for
MAX_N = 16
MAX_TOP_LOGPROBS = 20
#: the most bytes of the fields the gateway does not know, passed through as sent
MAX_UNKNOWN_BYTES = 64 * 1024
#: the fields the gateway reads; any other passes through to OpenAI-shaped providers
KNOWN = frozenset(
    {
        "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
        "temperature", "top_p", "presence_penalty", "frequency_penalty", "seed", "stop",
        "response_format", "user", "tools", "tool_choice", "parallel_tool_calls", "functions",
        "function_call", "n", "logprobs", "top_logprobs", "metadata", "store", "service_tier",
        "reasoning_effort", "modalities", "prediction", "audio", "logit_bias",
    }
)  # fmt: skip
#: generation options sent on to the provider as they are (after a type check)
_NUMBERS: dict[str, tuple[float, float]] = {
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}


@dataclass(slots=True)
class ChatRequest:
    """A parsed ``/v1/chat/completions`` body: the runtime request and how to answer it."""

    model: str
    stream: bool
    include_usage: bool
    request: LLMRequest


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Parse and check a request body; raise :class:`WireError` (400) when it is not valid."""
    body, model = json_body(raw)
    n = body.get("n")
    if n is not None and (not _is_int(n) or not 1 <= n <= MAX_N):
        raise bad(f"'n' must be an integer from 1 to {MAX_N}", "n")
    logprobs = body.get("logprobs")
    if not isinstance(logprobs, bool | None):
        raise bad("'logprobs' must be a boolean", "logprobs")
    top = body.get("top_logprobs")
    if top is not None and (not _is_int(top) or not 0 <= top <= MAX_TOP_LOGPROBS):
        raise bad(f"'top_logprobs' must be an integer from 0 to {MAX_TOP_LOGPROBS}", "top_logprobs")
    needs: set[str] = set()
    tools = _tools(body, needs)
    unknown = {k: v for k, v in body.items() if k not in KNOWN}
    if unknown and len(orjson.dumps(unknown)) > MAX_UNKNOWN_BYTES:
        raise bad(
            f"the fields this gateway does not know ({', '.join(sorted(unknown)[:5])}) take more "
            f"than {MAX_UNKNOWN_BYTES} bytes",
            sorted(unknown)[0],
        )
    messages = _messages(body.get("messages"), needs)
    stream = body.get("stream", False)
    if not isinstance(stream, bool | None):
        raise bad("'stream' must be a boolean", "stream")
    options = body.get("stream_options")
    include_usage = False
    if isinstance(options, dict):
        include_usage = options.get("include_usage", False)
        if not isinstance(include_usage, bool | None):
            raise bad(
                "'stream_options.include_usage' must be a boolean", "stream_options.include_usage"
            )
        include_usage = bool(include_usage)
    elif options is not None:
        raise bad("'stream_options' must be an object", "stream_options")
    which = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    max_tokens = body.get(which)
    if max_tokens is not None and (not _is_int(max_tokens) or not 1 <= max_tokens <= MAX_TOKENS):
        raise bad(f"'{which}' must be an integer from 1 to {MAX_TOKENS}", which)
    temperature = _number(body, "temperature", 0.0, 2.0)
    extra: dict[str, Any] = {}
    for name, (low, high) in _NUMBERS.items():
        value = _number(body, name, low, high)
        if value is not None:
            extra[name] = value
    seed = body.get("seed")
    if seed is not None:
        if not _is_int(seed):
            raise bad("'seed' must be an integer", "seed")
        extra["seed"] = seed
    stop = _stop(body.get("stop"))
    if stop is not None:
        extra["stop"] = stop
    fmt = body.get("response_format")
    if fmt is not None:
        if not isinstance(fmt, dict) or not isinstance(fmt.get("type"), str):
            raise bad("'response_format' must be an object with a 'type'", "response_format")
        extra["response_format"] = fmt
    user = body.get("user")
    if not isinstance(user, str | None):
        raise bad("'user' must be a string", "user")
    config = LLMConfig(
        model_identifier=model,
        max_tokens=max_tokens,
        temperature=temperature,
        extra_params=extra,
    )
    context = InterventionContext(user_id=user)
    request = LLMRequest(messages, config, context)
    request.tools = tools
    request.tool_choice = body.get("tool_choice", body.get("function_call"))
    request.wire = WireBody(OPENAI, body)
    request.needs = frozenset(needs)
    return ChatRequest(model, bool(stream), include_usage, request)


def _is_int(value: Any) -> bool:
    """A JSON integer: not a boolean, not a float (``1.0`` is not an integer)."""
    return type(value) is int


def _number(body: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise bad(f"'{name}' must be a number from {low:g} to {high:g}", name)
    return float(value)


def _stop(value: Any) -> list[str] | None:
    if value is None:
        return None
    words = [value] if isinstance(value, str) else value
    if (
        not isinstance(words, list)
        or len(words) > MAX_STOP_WORDS
        or not all(isinstance(w, str) and 0 < len(w) <= MAX_STOP_LENGTH for w in words)
    ):
        raise bad(
            f"'stop' must be a string or a list of at most {MAX_STOP_WORDS} strings of at most "
            f"{MAX_STOP_LENGTH} characters",
            "stop",
        )
    return list(words)


def _messages(value: Any, needs: set[str]) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise bad("'messages' must be a non-empty list", "messages")
    if len(value) > MAX_MESSAGES:
        raise bad(f"at most {MAX_MESSAGES} messages are accepted", "messages")
    out: list[dict[str, Any]] = []
    for i, m in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad(f"{where} must be an object", where)
        role = m.get("role")
        if role not in ROLES:
            raise bad(f"{where}.role must be one of {', '.join(sorted(ROLES))}", f"{where}.role")
        content = m.get("content")
        if isinstance(content, list):
            content = _parts(content, where, needs)
        elif content is None and role == "assistant":
            content = ""
        elif not isinstance(content, str):
            raise bad(
                f"{where}.content must be a string or a list of content parts", f"{where}.content"
            )
        msg: dict[str, Any] = {
            "role": "system" if role == "developer" else role,
            "content": content,
        }
        name = m.get("name")
        if name is not None:
            if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
                raise bad(
                    f"{where}.name must be a string of 1 to {MAX_NAME} characters",
                    f"{where}.name",
                )
            msg["name"] = name
        calls = m.get("tool_calls")
        if calls is not None:
            if role != "assistant" or not isinstance(calls, list):
                raise bad(f"{where}.tool_calls must be a list on an assistant message", where)
            msg["tool_calls"] = calls
        if role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise bad(f"{where}.tool_call_id must be a non-empty string", where)
            msg["tool_call_id"] = call_id
        out.append(msg)
    return out


# -- answers --------------------------------------------------------------------------------------


_ID_PREFIX = "chatcmpl-" + secrets.token_hex(8)
_ids = itertools.count(1)


def new_id() -> str:
    """A completion id unique to this process's lifetime: ``chatcmpl-``, 16 random hex digits
    drawn at start, and a counter (no system call per request)."""
    return f"{_ID_PREFIX}{next(_ids):x}"


def usage_doc(usage: Usage) -> dict[str, Any]:
    """OpenAI's ``usage`` object (with its details when there are cached or reasoning tokens)."""
    doc: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_tokens:
        doc["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens:
        doc["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return doc


def completion_body(response: LLMResponse, model: str, cid: str, created: int) -> bytes:
    """A ``chat.completion`` object for ``response``, answering for ``model`` as asked: an
    OpenAI-shaped upstream's answer as it came (tool calls, logprobs, every choice, usage
    details), only ``model`` rewritten; else one built from the response."""
    wire = response.wire
    if wire is not None and wire.api == OPENAI and isinstance(wire.body.get("choices"), list):
        return orjson.dumps({**wire.body, "model": model})
    message: dict[str, Any] = {"role": "assistant", "content": response.generated_content}
    if response.tool_calls:
        message["tool_calls"] = list(response.tool_calls)
    return orjson.dumps(
        {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": response.finish_reason or "stop",
                    "logprobs": None,
                }
            ],
            "usage": usage_doc(response.usage),
            "system_fingerprint": None,
        }
    )


class ChunkWriter:
    """The server-sent events of one streamed answer (``chat.completion.chunk`` objects)."""

    __slots__ = ("_head", "created", "id", "model")

    def __init__(self, model: str, cid: str | None = None, created: int | None = None) -> None:
        self.id = cid or new_id()
        self.created = int(time.time()) if created is None else created
        self.model = model
        # every chunk starts alike: serialised once
        head = orjson.dumps(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
            }
        )
        self._head = b"data: " + head[:-1] + b',"choices":'

    def _event(self, choices: bytes, usage: Usage | None = None) -> bytes:
        tail = (
            b"}\n\n" if usage is None else b',"usage":' + orjson.dumps(usage_doc(usage)) + b"}\n\n"
        )
        return self._head + choices + tail

    def role(self) -> bytes:
        """The first event: the assistant role, no text yet."""
        return self._event(
            b'[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]'
        )

    def text(self, text: str) -> bytes:
        """An event carrying a piece of the answer."""
        delta = orjson.dumps({"content": text})
        return self._event(b'[{"index":0,"delta":' + delta + b',"finish_reason":null}]')

    def tool_calls(self, calls: Sequence[Mapping[str, Any]], text: str = "") -> bytes:
        """An event carrying tool-call deltas (as OpenAI sends them), and text if any."""
        delta: dict[str, Any] = {"tool_calls": list(calls)}
        if text:
            delta["content"] = text
        body = orjson.dumps(delta)
        return self._event(b'[{"index":0,"delta":' + body + b',"finish_reason":null}]')

    def finish(self, finish_reason: str | None, usage: Usage, include_usage: bool) -> bytes:
        """The last events, as OpenAI sends them: the finish reason, a usage-only chunk only when
        the client asked for ``stream_options.include_usage``, and ``data: [DONE]``."""
        reason = orjson.dumps(finish_reason or "stop")
        out = self._event(b'[{"index":0,"delta":{},"finish_reason":' + reason + b"}]")
        if include_usage:
            out += self.usage(usage)
        return out + b"data: [DONE]\n\n"

    def usage(self, usage: Usage) -> bytes:
        """The usage-only chunk (no choices) of ``stream_options.include_usage``."""
        return self._event(b"[]", usage)


def stream_error_event(error: WireError) -> bytes:
    """An error after the stream began (the status line is gone): an ``error`` event."""
    return b"data: " + error.body() + b"\n\n"


# -- errors ---------------------------------------------------------------------------------------


def wire_error(exc: BaseException) -> WireError:
    """The OpenAI error (and HTTP status) for an exception raised answering a request: the
    :class:`~gwconfig.server.answers.Answer` of :func:`~gwconfig.server.answers.answer_for`."""
    if isinstance(exc, WireError):
        return exc
    answer = answer_for(exc)
    return WireError(
        answer.status,
        answer.message,
        answer.kind,
        answer.code,
        param=answer.param,
        headers=answer.headers,
    )
