"""The checked and bounded parts of a Messages request: content blocks, ``system``, tools and
``tool_choice`` (the bounds of the chat path's :mod:`~gwconfig.server.openai.content`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gwconfig.server.openai.content import MAX_DATA_URL, MAX_PARTS, MAX_TOOLS, MAX_TOOLS_BYTES
from gwconfig.server.openai.errors import bad

#: the longest tool name and ``tool_use`` id taken
MAX_NAME = 256
#: block types checked here; any other passes on as sent to Anthropic models (bounded by the
#: body size) and is refused by name in translation
BLOCK_NEEDS = {"image": "vision", "document": "file"}
TOOL_CHOICES = ("auto", "any", "tool", "none")
IMAGE_SOURCES = ("base64", "url", "file")


def _text(block: Mapping[str, Any], at: str) -> None:
    if not isinstance(block.get("text"), str):
        raise bad(f"{at}.text must be a string", f"{at}.text")


def _name(value: Any, at: str) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
        raise bad(f"{at} must be a string of 1 to {MAX_NAME} characters", at)


def _image(block: Mapping[str, Any], at: str) -> None:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind not in IMAGE_SOURCES:
        raise bad(f"{at}.source.type must be one of {', '.join(IMAGE_SOURCES)}", f"{at}.source")
    assert isinstance(source, dict)
    field = {"base64": "data", "url": "url", "file": "file_id"}[kind]
    value = source.get(field)
    if not isinstance(value, str) or not value:
        raise bad(f"{at}.source.{field} must be a non-empty string", f"{at}.source.{field}")
    if len(value) > MAX_DATA_URL:
        raise bad(f"{at} carries more than {MAX_DATA_URL} bytes inline", f"{at}.source.{field}")
    if kind == "base64" and not isinstance(source.get("media_type"), str):
        raise bad(f"{at}.source.media_type must be a string", f"{at}.source.media_type")


def check_blocks(value: Any, at: str, needs: set[str], role: str | None) -> None:
    """A content block list (a message's, or a tool result's when ``role`` is None)."""
    if not isinstance(value, list):
        raise bad(f"{at} must be a string or a list of content blocks", at)
    if len(value) > MAX_PARTS:
        raise bad(f"{at} has more than {MAX_PARTS} blocks", at)
    for j, block in enumerate(value):
        where = f"{at}[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(kind, str) or not kind:
            raise bad(f"{where}.type must be a string (a block is an object)", f"{where}.type")
        assert isinstance(block, dict)
        if kind in BLOCK_NEEDS:
            needs.add(BLOCK_NEEDS[kind])
        if kind == "text":
            _text(block, where)
        elif kind == "image":
            _image(block, where)
        elif role is None:
            if kind != "document":
                raise bad(f"{where}.type must be text, image or document", f"{where}.type")
        elif kind == "tool_use":
            if role != "assistant":
                raise bad(f"{where}.type: tool_use blocks are the assistant's", f"{where}.type")
            _name(block.get("id"), f"{where}.id")
            _name(block.get("name"), f"{where}.name")
            if not isinstance(block.get("input"), dict):
                raise bad(f"{where}.input must be an object", f"{where}.input")
        elif kind == "tool_result":
            if role != "user":
                raise bad(f"{where}.type: tool_result blocks are the user's", f"{where}.type")
            _name(block.get("tool_use_id"), f"{where}.tool_use_id")
            content = block.get("content")
            if content is not None and not isinstance(content, str):
                check_blocks(content, f"{where}.content", needs, None)
            if not isinstance(block.get("is_error", False), bool):
                raise bad(f"{where}.is_error must be a boolean", f"{where}.is_error")
        elif kind == "thinking" and not isinstance(block.get("thinking"), str):
            raise bad(f"{where}.thinking must be a string", f"{where}.thinking")


def check_system(value: Any) -> None:
    """``system``: a string or a list of text blocks."""
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, list) or len(value) > MAX_PARTS:
        raise bad(
            f"'system' must be a string or a list of at most {MAX_PARTS} text blocks", "system"
        )
    for j, block in enumerate(value):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise bad(f"system[{j}] must be a text block", f"system[{j}]")
        _text(block, f"system[{j}]")


def check_tools(value: Any, needs: set[str]) -> None:
    """``tools``: custom tools (``name``, ``input_schema``) and server tools (``type``,
    ``name``), checked and bounded."""
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise bad("'tools' must be a list of objects", "tools")
    if len(value) > MAX_TOOLS:
        raise bad(f"at most {MAX_TOOLS} tools are accepted", "tools")
    if len(orjson.dumps(value)) > MAX_TOOLS_BYTES:
        raise bad(f"'tools' takes more than {MAX_TOOLS_BYTES} bytes of JSON", "tools")
    for i, tool in enumerate(value):
        _name(tool.get("name"), f"tools[{i}].name")
        kind = tool.get("type")
        if kind in (None, "custom"):
            if not isinstance(tool.get("input_schema"), dict):
                raise bad(f"tools[{i}].input_schema must be an object", f"tools[{i}].input_schema")
            if not isinstance(tool.get("description"), str | None):
                raise bad(f"tools[{i}].description must be a string", f"tools[{i}].description")
        elif not isinstance(kind, str):
            raise bad(f"tools[{i}].type must be a string", f"tools[{i}].type")
    if value:
        needs.add("function_calling")


def check_tool_choice(value: Any) -> None:
    """``tool_choice``: ``{"type": auto|any|tool|none}`` (``name`` for ``tool``) and
    ``disable_parallel_tool_use``."""
    if value is None:
        return
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in TOOL_CHOICES:
        raise bad(f"tool_choice.type must be one of {', '.join(TOOL_CHOICES)}", "tool_choice.type")
    assert isinstance(value, dict)
    if kind == "tool":
        _name(value.get("name"), "tool_choice.name")
    if not isinstance(value.get("disable_parallel_tool_use", False), bool):
        raise bad(
            "tool_choice.disable_parallel_tool_use must be a boolean",
            "tool_choice.disable_parallel_tool_use",
        )
