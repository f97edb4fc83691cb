"""OpenAI chat requests translated to Anthropic Messages bodies (pure functions, no I/O).

An OpenAI client's body (``call.wire`` in the OPENAI API) or a runtime call (``call.messages``,
``call.tools``, ``call.tool_choice``, options) becomes one Messages body: system and developer
messages go to ``system``, tools to ``input_schema`` tools, tool results to ``tool_result``
blocks, assistant ``tool_calls`` to ``tool_use`` blocks, image parts to image sources. What the
Messages API cannot carry is an :class:`UnsupportedParameterError` naming the field and the
provider type, before any call: never a silent drop. The work is linear in the request, which
the server bounds (messages, parts, tools, data URLs).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gwconfig.runtime.errors import UnsupportedParameterError
from gwconfig.runtime.messages import OPENAI
from gwconfig.runtime.providers.base import ProviderCall

DEFAULT_MAX_TOKENS = 4096
#: the OpenAI chat fields carried to a Messages field
TRANSLATED = frozenset(
    {
        "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
        "temperature", "top_p", "top_k", "stop", "user", "tools", "tool_choice",
        "parallel_tool_calls", "functions", "function_call",
    }
)  # fmt: skip


#: the response formats translated (``json_schema``: see :func:`schema_tool`)
_FORMATS = ("text", "json_schema")


def _unset(value: Any) -> bool:
    return value is None


#: OpenAI fields with no Messages equivalent: accepted only with the value that asks for
#: nothing (so nothing is lost), else refused with the reason
NEUTRAL: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n": (lambda v: v in (None, 1), "the Messages API answers with one choice"),
    "logprobs": (lambda v: v in (None, False), "the Messages API returns no log probabilities"),
    "top_logprobs": (_unset, "the Messages API returns no log probabilities"),
    "seed": (_unset, "the Messages API has no seed"),
    "presence_penalty": (lambda v: v in (None, 0), "the Messages API has no penalties"),
    "frequency_penalty": (lambda v: v in (None, 0), "the Messages API has no penalties"),
    "logit_bias": (lambda v: not v, "the Messages API has no logit bias"),
    "response_format": (
        lambda v: v is None or (isinstance(v, Mapping) and v.get("type") in _FORMATS),
        "the Messages API has no JSON mode: send a json_schema, or ask for JSON in the prompt",
    ),
    "metadata": (lambda v: not v, "its metadata carries only a user id: send 'user'"),
    "store": (lambda v: v in (None, False), "stored completions are OpenAI's"),
    "service_tier": (lambda v: v in (None, "auto"), "its service tiers are not OpenAI's"),
    "reasoning_effort": (_unset, "extended thinking is not translated"),
    "modalities": (lambda v: v in (None, ["text"]), "the Messages API answers with text only"),
    "audio": (_unset, "the Messages API answers with text only"),
    "prediction": (_unset, "the Messages API has no predicted outputs"),
}
#: the image media types the Messages API takes in a base64 source
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
#: what each OpenAI ``tool_choice`` string means in the Messages API
_CHOICES = {"auto": "auto", "required": "any", "none": "none"}


def refused(name: str, why: str) -> UnsupportedParameterError:
    """The 400 for ``name`` (a field path), which provider type 'anthropic' cannot carry."""
    return UnsupportedParameterError(
        f"'{name}' cannot be sent to provider type 'anthropic' ({why})"
    )


def check_fields(fields: Mapping[str, Any]) -> None:
    """Refuse the first field of an OpenAI body (or a call's extra options) that asks for
    something the Messages API cannot carry."""
    for name, value in fields.items():
        if name in TRANSLATED:
            continue
        neutral = NEUTRAL.get(name)
        if neutral is None:
            if value is not None:
                raise refused(name, "the Messages API has no such parameter")
        elif not neutral[0](value):
            raise refused(name, neutral[1])


def messages_body(call: ProviderCall, stream: bool) -> dict[str, Any]:
    """The Messages body for an OpenAI-shaped call (a client's OPENAI wire body or a runtime
    call); raise :class:`UnsupportedParameterError` for what cannot be translated."""
    fields = request_fields(call)
    check_fields(fields)
    system, messages = translate_messages(call.messages)
    opts = call.options()
    body: dict[str, Any] = {
        "model": call.model.model_id,
        "messages": messages,
        "max_tokens": opts.get("max_tokens") or default_max_tokens(call),
    }
    if system:
        body["system"] = system
    for name in ("temperature", "top_p", "top_k"):
        value = fields.get(name, opts.get(name)) if name == "top_k" else opts.get(name)
        if value is not None:
            body[name] = value
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and temperature > 1:
        raise refused("temperature", "above 1: its range is 0 to 1")
    stop = opts.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    forced = schema_tool(fields)
    if forced is not None:
        if call.tools or call.tool_choice is not None:
            raise refused("response_format", f"{SCHEMA_AS_TOOL}, which rules out other tools")
        body["tools"] = [forced]
        body["tool_choice"] = {"type": "tool", "name": forced["name"]}
    legacy = fields.get("tools") is None and fields.get("functions") is not None
    if call.tools:
        body["tools"] = translate_tools(call.tools, "functions" if legacy else "tools")
    parallel = fields.get("parallel_tool_calls")
    # the legacy function-calling API answers with one call at most
    choice = translate_tool_choice(call.tool_choice, False if legacy else parallel, legacy)
    if choice is not None and (call.tools or call.tool_choice is not None):
        body["tool_choice"] = choice
    user = fields.get("user")
    if isinstance(user, str) and user:
        body["metadata"] = {"user_id": user}
    if stream:
        body["stream"] = True
    return body


def request_fields(call: ProviderCall) -> Mapping[str, Any]:
    """The fields the client asked for: its OpenAI body, else the call's extra options."""
    wire = call.wire
    return wire.body if wire is not None and wire.api == OPENAI else call.extra


def answer_schema(call: ProviderCall) -> str | None:
    """The name of the forced tool whose input is the answer (a ``json_schema`` response
    format), or None."""
    tool = schema_tool(request_fields(call))
    return str(tool["name"]) if tool is not None else None


#: how a ``json_schema`` response format is sent
SCHEMA_AS_TOOL = "a JSON schema answer is asked for as a forced tool whose input is the answer"


def schema_tool(fields: Mapping[str, Any]) -> dict[str, Any] | None:
    """The tool a ``response_format`` of type ``json_schema`` is sent as (its input schema the
    answer's schema, forced by ``tool_choice``), or None without one."""
    fmt = fields.get("response_format")
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema")
    name = spec.get("name") if isinstance(spec, Mapping) else None
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    if not isinstance(name, str) or not name:
        raise refused("response_format.json_schema.name", f"{SCHEMA_AS_TOOL}: it needs a name")
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        raise refused(
            "response_format.json_schema.schema", f"{SCHEMA_AS_TOOL}: it must be an object schema"
        )
    description = spec.get("description") if isinstance(spec, Mapping) else None
    return {
        "name": name,
        "description": description if isinstance(description, str) and description else
        "Give the answer as this tool's input.",
        "input_schema": dict(schema),
    }  # fmt: skip


def native_body(call: ProviderCall, body: Mapping[str, Any], stream: bool) -> dict[str, Any]:
    """A Messages client's body as it sent it: only ``model`` rewritten, the model's default
    parameters where the client gave none, ``max_tokens`` always set."""
    out = dict(body)
    out["model"] = call.model.model_id
    params = call.model.parameters
    for name in ("temperature", "top_p", "top_k"):
        if params.get(name) is not None:
            out.setdefault(name, params[name])
    stop = params.get("stop")
    if stop:
        out.setdefault("stop_sequences", [stop] if isinstance(stop, str) else list(stop))
    if out.get("max_tokens") is None:
        out["max_tokens"] = params.get("max_tokens") or default_max_tokens(call)
    if stream:
        out["stream"] = True
    else:
        out.pop("stream", None)
    return out


def default_max_tokens(call: ProviderCall) -> int:
    """``max_tokens`` when the request sets none (the Messages API needs one): the model's
    limit, at most :data:`DEFAULT_MAX_TOKENS`."""
    return min(call.model.max_tokens or DEFAULT_MAX_TOKENS, DEFAULT_MAX_TOKENS)


# -- messages -------------------------------------------------------------------------------------


def translate_messages(
    messages: Sequence[Mapping[str, Any]],
) -> tuple[str, list[dict[str, Any]]]:
    """The ``system`` text and the Messages ``messages`` of OpenAI chat messages; consecutive
    tool messages become one user message of ``tool_result`` blocks."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    results: list[dict[str, Any]] | None = None  # the tool_result blocks being gathered
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        role = m.get("role")
        if m.get("name") is not None:
            raise refused(f"{where}.name", "the Messages API has no participant names")
        if role == "tool":
            block = _tool_result(m, where)
            if results is None:
                results = [block]
                out.append({"role": "user", "content": results})
            else:
                results.append(block)
            continue
        results = None
        if role in ("system", "developer"):
            system.append(_plain_text(m.get("content"), where))
        elif role == "user":
            out.append({"role": "user", "content": _user_content(m.get("content"), where)})
        elif role == "assistant":
            out.append({"role": "assistant", "content": _assistant_content(m, where)})
        else:
            raise refused(f"{where}.role", f"role {role!r} has no Messages equivalent")
    return "\n\n".join(system), out


def _plain_text(content: Any, where: str) -> str:
    """A message's text: a string, or text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text_of(p, f"{where}.content[{j}]") for j, p in enumerate(content))
    raise refused(f"{where}.content", "it must be a string or a list of text parts")


def _text_of(part: Any, where: str) -> str:
    if isinstance(part, Mapping) and part.get("type") == "text":
        text = part.get("text")
        if isinstance(text, str):
            return text
    raise refused(where, "only text parts can go there")


def _user_content(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise refused(f"{where}.content", "it must be a string or a list of content parts")
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            text = _text_of(part, at)
            if text:  # the Messages API refuses empty text blocks; an empty one says nothing
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            blocks.append(image_block(part.get("image_url"), at))
        elif kind == "input_audio":
            raise refused(at, "the Messages API takes no audio input")
        elif kind == "file":
            raise refused(at, "file parts are not translated to document blocks")
        else:
            raise refused(at, f"content part type {kind!r} has no Messages equivalent")
    return blocks


def image_block(image: Any, where: str) -> dict[str, Any]:
    """An image block: a data URL as a base64 source, an http(s) URL as a url source."""
    if not isinstance(image, Mapping) or not isinstance(image.get("url"), str):
        raise refused(f"{where}.image_url.url", "it must be a string")
    if image.get("detail") not in (None, "auto"):
        raise refused(f"{where}.image_url.detail", "the Messages API picks the resolution")
    url: str = image["url"]
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        media, _, encoding = header.partition(";")
        if not comma or encoding != "base64":
            raise refused(f"{where}.image_url.url", "a data URL must be base64-encoded")
        if media not in IMAGE_TYPES:
            raise refused(
                f"{where}.image_url.url",
                f"media type {media[:64]!r} is not one of {', '.join(sorted(IMAGE_TYPES))}",
            )
        source = {"type": "base64", "media_type": media, "data": data}
        return {"type": "image", "source": source}
    raise refused(f"{where}.image_url.url", "an image is an http(s) URL or a data URL")


def _assistant_content(m: Mapping[str, Any], where: str) -> str | list[dict[str, Any]]:
    content = m.get("content")
    calls = m.get("tool_calls")
    if not calls and isinstance(content, str):
        return content
    blocks: list[dict[str, Any]] = []
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for j, part in enumerate(content):
            at = f"{where}.content[{j}]"
            if isinstance(part, Mapping) and part.get("type") == "refusal":
                text = part.get("refusal")
                if not isinstance(text, str):
                    raise refused(f"{at}.refusal", "it must be a string")
            else:
                text = _text_of(part, at)
            if text:
                blocks.append({"type": "text", "text": text})
    elif content is not None:
        raise refused(f"{where}.content", "it must be a string or a list of text parts")
    if calls:
        if not isinstance(calls, list):
            raise refused(f"{where}.tool_calls", "it must be a list")
        blocks += (tool_use_block(c, f"{where}.tool_calls[{j}]") for j, c in enumerate(calls))
    return blocks


def tool_use_block(call: Any, where: str) -> dict[str, Any]:
    """A ``tool_use`` block for one OpenAI tool call (its arguments parsed: a JSON object)."""
    fn = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(fn, Mapping) or call.get("type", "function") != "function":
        raise refused(where, "only function tool calls translate")
    cid, name = call.get("id"), fn.get("name")
    if not isinstance(cid, str) or not cid:
        raise refused(f"{where}.id", "a tool_use block needs the call's id")
    if not isinstance(name, str) or not name:
        raise refused(f"{where}.function.name", "a tool_use block needs the function's name")
    arguments = fn.get("arguments")
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or not isinstance(arguments, str | None):
        raise refused(
            f"{where}.function.arguments", "a tool_use input must be a JSON object as a string"
        )
    return {"type": "tool_use", "id": cid, "name": name, "input": parsed}


def _tool_result(m: Mapping[str, Any], where: str) -> dict[str, Any]:
    call_id = m.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise refused(f"{where}.tool_call_id", "a tool_result block needs the call's id")
    content = m.get("content")
    if isinstance(content, list):
        texts = [_text_of(p, f"{where}.content[{j}]") for j, p in enumerate(content)]
        value: Any = [{"type": "text", "text": t} for t in texts if t]
    else:
        value = _plain_text(content, where)
    return {"type": "tool_result", "tool_use_id": call_id, "content": value}


# -- tools ----------------------------------------------------------------------------------------


def translate_tools(tools: Sequence[Any], key: str = "tools") -> list[dict[str, Any]]:
    """Messages tools (``name``, ``description``, ``input_schema``) of OpenAI function tools
    (``key`` ``tools``) or legacy ``functions``; ``strict`` has no Messages equivalent (the
    schema guides the model, it is not enforced)."""
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        where = f"{key}[{i}]"
        if not isinstance(tool, Mapping):
            raise refused(where, "a tool must be an object")
        if key == "tools":
            if tool.get("type", "function") != "function":
                raise refused(f"{where}.type", "only function tools translate")
            fn, where = tool.get("function"), f"{where}.function"
        else:
            fn = tool
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise refused(f"{where}.name", "a tool needs a name")
        spec: dict[str, Any] = {"name": fn["name"]}
        description = fn.get("description")
        if description:
            spec["description"] = description
        params = fn.get("parameters")
        if params is not None and not isinstance(params, Mapping):
            raise refused(f"{where}.parameters", "it must be a JSON schema object")
        spec["input_schema"] = dict(params) if params else {"type": "object", "properties": {}}
        out.append(spec)
    return out


def translate_tool_choice(
    choice: Any, parallel: Any = None, legacy: bool = False
) -> dict[str, Any] | None:
    """The Messages ``tool_choice`` of OpenAI's (or the legacy ``function_call``), with
    ``disable_parallel_tool_use`` when ``parallel`` is False."""
    name = "function_call" if legacy else "tool_choice"
    out: dict[str, Any]
    if choice is None:
        if parallel is not False:
            return None
        out = {"type": "auto"}
    elif isinstance(choice, str) and choice in _CHOICES:
        out = {"type": _CHOICES[choice]}
    elif isinstance(choice, Mapping):
        fn = choice if legacy else choice.get("function")
        picked = fn.get("name") if isinstance(fn, Mapping) else None
        if (not legacy and choice.get("type") != "function") or not isinstance(picked, str):
            raise refused(name, "only 'auto', 'required', 'none' or a named function translate")
        out = {"type": "tool", "name": picked}
    else:
        raise refused(name, "only 'auto', 'required', 'none' or a named function translate")
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out
