"""Anthropic's wire format for ``POST /v1/messages`` and ``/v1/messages/count_tokens``: the
request checked and bounded, then carried as sent (``LLMRequest.wire``) with the neutral
fields (chat messages, function tools, the capabilities needed) the routing judges by."""

from __future__ import annotations

from typing import Any

import orjson

from gwconfig.runtime.errors import UnsupportedParameterError
from gwconfig.runtime.messages import (
    ANTHROPIC,
    InterventionContext,
    LLMConfig,
    LLMRequest,
    WireBody,
)
from gwconfig.runtime.providers.from_anthropic import chat_messages, chat_tools
from gwconfig.server.anthropic.blocks import (
    check_blocks,
    check_system,
    check_tool_choice,
    check_tools,
)
from gwconfig.server.openai.errors import bad, json_body
from gwconfig.server.openai.wire import (
    MAX_MESSAGES,
    MAX_STOP_LENGTH,
    MAX_TOKENS,
    MAX_UNKNOWN_BYTES,
    ChatRequest,
)

MESSAGES = "/v1/messages"
COUNT_TOKENS = "/v1/messages/count_tokens"
#: the most ``stop_sequences`` taken
MAX_STOP_SEQUENCES = 64
#: the smallest thinking budget Anthropic takes
MIN_THINKING_BUDGET = 1024
ROLES = ("user", "assistant")
#: the fields the gateway reads; any other passes on to Anthropic models as sent (bounded)
KNOWN = frozenset(
    {
        "model", "messages", "system", "max_tokens", "tools", "tool_choice", "stop_sequences",
        "temperature", "top_p", "top_k", "metadata", "thinking", "stream",
    }
)  # fmt: skip


def parse_messages_request(raw: bytes, *, count: bool = False) -> ChatRequest:
    """Parse and check a Messages body (a ``count_tokens`` body when ``count``: no
    ``max_tokens``, no ``stream``); raise :class:`WireError` (400) naming the field."""
    body, model = json_body(raw)
    needs: set[str] = set()
    _messages(body.get("messages"), needs)
    check_system(body.get("system"))
    check_tools(body.get("tools"), needs)
    check_tool_choice(body.get("tool_choice"))
    unknown = {k: v for k, v in body.items() if k not in KNOWN}
    if unknown and len(orjson.dumps(unknown)) > MAX_UNKNOWN_BYTES:
        names = sorted(unknown)
        raise bad(
            f"the fields this gateway does not know ({', '.join(names[:5])}) take more than "
            f"{MAX_UNKNOWN_BYTES} bytes",
            names[0],
        )
    max_tokens = body.get("max_tokens")
    required = not count or max_tokens is not None
    if required and (type(max_tokens) is not int or not 1 <= max_tokens <= MAX_TOKENS):
        raise bad(f"'max_tokens' is required: an integer from 1 to {MAX_TOKENS}", "max_tokens")
    stream = body.get("stream", False)
    if not isinstance(stream, bool | None) or (count and stream):
        raise bad("'stream' must be a boolean" + (" (false here)" if count else ""), "stream")
    temperature = _number(body, "temperature", 1.0)
    _number(body, "top_p", 1.0)
    top_k = body.get("top_k")
    if top_k is not None and (type(top_k) is not int or top_k < 0):
        raise bad("'top_k' must be a non-negative integer", "top_k")
    _stop_sequences(body.get("stop_sequences"))
    user = _metadata(body.get("metadata"))
    _thinking(body.get("thinking"))
    request = LLMRequest(
        _neutral_messages(body),
        LLMConfig(model_identifier=model, max_tokens=max_tokens, temperature=temperature),
        InterventionContext(user_id=user),
    )
    try:
        request.tools = chat_tools(body.get("tools") or (), ANTHROPIC) or None
    except UnsupportedParameterError:  # server tools: Anthropic models only
        request.tools = None
    request.wire = WireBody(ANTHROPIC, body)
    request.needs = frozenset(needs)
    return ChatRequest(model, bool(stream), False, request)


def _neutral_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation in the chat vocabulary (what a provider without the client's body,
    and the usage records, see); blocks the chat format has no word for are left out."""
    try:
        return chat_messages(body, ANTHROPIC)
    except UnsupportedParameterError:
        out = (
            [{"role": "system", "content": _texts(body.get("system"))}]
            if body.get("system")
            else []
        )
        for m in body["messages"]:
            out.append({"role": m["role"], "content": _texts(m["content"])})
        return out


def _texts(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b["text"] for b in content if b.get("type") == "text")


def _messages(value: Any, needs: set[str]) -> None:
    if not isinstance(value, list) or not value:
        raise bad("'messages' must be a non-empty list", "messages")
    if len(value) > MAX_MESSAGES:
        raise bad(f"at most {MAX_MESSAGES} messages are accepted", "messages")
    for i, m in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad(f"{where} must be an object", where)
        role = m.get("role")
        if role not in ROLES:
            raise bad(f"{where}.role must be 'user' or 'assistant'", f"{where}.role")
        content = m.get("content")
        if not isinstance(content, str):
            check_blocks(content, f"{where}.content", needs, role)


def _number(body: dict[str, Any], name: str, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= high:
        raise bad(f"'{name}' must be a number from 0 to {high:g}", name)
    return float(value)


def _stop_sequences(value: Any) -> None:
    if value is None:
        return
    if (
        not isinstance(value, list)
        or len(value) > MAX_STOP_SEQUENCES
        or not all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_LENGTH for s in value)
    ):
        raise bad(
            f"'stop_sequences' must be a list of at most {MAX_STOP_SEQUENCES} strings of 1 to "
            f"{MAX_STOP_LENGTH} characters",
            "stop_sequences",
        )


def _metadata(value: Any) -> str | None:
    """``metadata`` (an object; its ``user_id`` a string): the user id."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad("'metadata' must be an object", "metadata")
    user = value.get("user_id")
    if not isinstance(user, str | None) or (user is not None and len(user) > 256):
        raise bad(
            "'metadata.user_id' must be a string of at most 256 characters", "metadata.user_id"
        )
    return user


def _thinking(value: Any) -> None:
    """``thinking``: an object with a ``type`` (``enabled`` with its ``budget_tokens``,
    ``disabled``, ``adaptive`` ...)."""
    if value is None:
        return
    kind = value.get("type") if isinstance(value, dict) else None
    if not isinstance(kind, str) or not kind:
        raise bad("'thinking' must be an object with a 'type'", "thinking.type")
    assert isinstance(value, dict)
    budget = value.get("budget_tokens")
    if kind != "enabled" and budget is None:
        return
    if type(budget) is not int or not MIN_THINKING_BUDGET <= budget <= MAX_TOKENS:
        raise bad(
            f"thinking.budget_tokens must be an integer from {MIN_THINKING_BUDGET} to {MAX_TOKENS}",
            "thinking.budget_tokens",
        )
