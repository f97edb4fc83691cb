"""An Anthropic Messages request as an OpenAI chat completions request: pure functions.

:func:`chat_body` turns the body an Anthropic client sent (``POST /v1/messages``, checked by the
server) into the chat completions body an OpenAI-shaped provider is sent: ``system`` becomes a
system message, content blocks become content parts (images as ``image_url``, base64 sources as
data URLs), ``tool_use`` blocks become the assistant's ``tool_calls``, ``tool_result`` blocks
become ``role: tool`` messages, custom tools become function tools, ``tool_choice`` and
``stop_sequences`` their OpenAI names. What the chat format cannot carry (``top_k``, enabled
``thinking``, server tools, thinking blocks, documents, a field it does not know ...) raises
:class:`UnsupportedParameterError` naming the field and the provider type; nothing is dropped,
except ``cache_control`` marks (OpenAI-shaped providers cache prompts on their own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from gwconfig.runtime.errors import UnsupportedParameterError

#: the most stop words an OpenAI chat request takes
MAX_STOP = 4
#: Anthropic fields carried under the same name
_SAME = ("max_tokens", "temperature", "top_p")
#: Anthropic stop reasons (an answer in these words needs no mapping)
STOP_REASONS = frozenset(
    {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"}
)
#: OpenAI finish reasons as Anthropic stop reasons
FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def refused(field: str, provider_type: str, why: str = "") -> UnsupportedParameterError:
    """The 400 of a field of an Anthropic request that provider type ``provider_type`` cannot
    carry."""
    reason = f" ({why})" if why else ""
    return UnsupportedParameterError(
        f"'{field}' cannot be sent to provider type '{provider_type}'{reason}"
    )


def stop_reason(finish_reason: str | None) -> str:
    """The Anthropic ``stop_reason`` of an OpenAI ``finish_reason`` (``end_turn`` when none)."""
    if finish_reason in STOP_REASONS:
        return finish_reason
    return FINISH_TO_STOP.get(finish_reason or "stop", "end_turn")


def chat_body(body: Mapping[str, Any], provider_type: str) -> dict[str, Any]:
    """The chat completions body of an Anthropic Messages body (``model`` as sent; the provider
    rewrites it and sets the stream options)."""
    out: dict[str, Any] = {
        "model": body.get("model"),
        "messages": chat_messages(body, provider_type),
    }
    for name, value in body.items():
        if value is None or name in ("model", "messages", "system", "cache_control"):
            continue
        if name in _SAME:
            out[name] = value
        elif name == "stream":
            out["stream"] = bool(value)
        elif name == "stop_sequences":
            if len(value) > MAX_STOP:
                raise refused(name, provider_type, f"it takes at most {MAX_STOP} stop sequences")
            if value:
                out["stop"] = list(value)
        elif name == "metadata":
            for key, item in value.items():
                if key != "user_id":
                    raise refused(f"metadata.{key}", provider_type)
                if item is not None:
                    out["user"] = item
        elif name == "tools":
            tools = chat_tools(value, provider_type)
            if tools:
                out["tools"] = tools
        elif name == "tool_choice":
            out.update(_tool_choice(value, bool(body.get("tools"))))
        elif name == "thinking":
            if value.get("type") != "disabled":
                raise refused("thinking", provider_type, "extended thinking is Anthropic's")
        else:  # top_k, and any field the chat format has no word for
            raise refused(name, provider_type)
    return out


def chat_tools(tools: Sequence[Mapping[str, Any]], provider_type: str) -> list[dict[str, Any]]:
    """Custom tools as OpenAI function tools; a server tool (``web_search`` ...) is refused."""
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        kind = tool.get("type")
        if kind not in (None, "custom"):
            raise refused(f"tools[{i}]", provider_type, f"server tool type '{kind}'")
        function: dict[str, Any] = {"name": tool["name"]}
        if tool.get("description") is not None:
            function["description"] = tool["description"]
        function["parameters"] = tool.get("input_schema") or {"type": "object"}
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Mapping[str, Any], has_tools: bool) -> dict[str, Any]:
    kind = choice.get("type")
    out: dict[str, Any] = {}
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    if choice.get("disable_parallel_tool_use") and has_tools:
        out["parallel_tool_calls"] = False
    return out


def chat_messages(body: Mapping[str, Any], provider_type: str) -> list[dict[str, Any]]:
    """The conversation (``system`` and ``messages``) as OpenAI chat messages."""
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if isinstance(system, str) and system:
        out.append({"role": "system", "content": system})
    elif isinstance(system, list) and system:
        out.append({"role": "system", "content": "\n\n".join(b["text"] for b in system)})
    for i, message in enumerate(body.get("messages") or ()):
        where = f"messages[{i}]"
        role, content = message["role"], message["content"]
        if isinstance(content, str):
            out.append({"role": role, "content": content})
        elif role == "assistant":
            out.append(_assistant(content, where, provider_type))
        else:
            out.extend(_user(content, where, provider_type))
    return out


def _assistant(blocks: Sequence[Mapping[str, Any]], where: str, pt: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "text":
            texts.append(block["text"])
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": arguments},
                }
            )
        else:
            raise refused(f"{where}.content[{j}]", pt, f"a '{kind}' block")
    content: Any
    if len(texts) == 1:
        content = texts[0]
    elif texts:
        content = [{"type": "text", "text": t} for t in texts]
    else:
        content = None if calls else ""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return message


def _user(blocks: Sequence[Mapping[str, Any]], where: str, pt: str) -> list[dict[str, Any]]:
    """A user turn: its tool results as tool messages first, then the rest as one message."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        kind = block.get("type")
        at = f"{where}.content[{j}]"
        if kind == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, at, pt)}})
        elif kind == "tool_result":
            text = _result_text(block.get("content"), at, pt)
            if block.get("is_error"):
                text = "Error: " + text
            results.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
        else:
            raise refused(at, pt, f"a '{kind}' block")
    if parts:
        results.append({"role": "user", "content": parts})
    return results


def _image_url(block: Mapping[str, Any], at: str, pt: str) -> str:
    source = block["source"]
    if source.get("type") == "base64":
        return f"data:{source['media_type']};base64,{source['data']}"
    if source.get("type") == "url":
        return str(source["url"])
    raise refused(f"{at}.source", pt, f"an image source of type '{source.get('type')}'")


def _result_text(content: Any, at: str, pt: str) -> str:
    """A tool result's content as the text of a tool message (its text blocks, one a line)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for k, block in enumerate(content):
        if block.get("type") != "text":
            raise refused(f"{at}.content[{k}]", pt, "a tool result takes only text there")
        texts.append(block["text"])
    return "\n".join(texts)
