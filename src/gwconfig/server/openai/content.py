"""The checked and bounded parts of a chat request beyond plain text: tools and content parts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gwconfig.server.openai.errors import bad

#: the most tools (or legacy functions) one request may offer
MAX_TOOLS = 128
#: the most bytes of the tools' JSON (names, descriptions and parameter schemas)
MAX_TOOLS_BYTES = 512 * 1024
#: the most content parts of one message
MAX_PARTS = 256
#: the most bytes of one data URL (an image, audio or file sent inline)
MAX_DATA_URL = 20 * 1024 * 1024
#: the content part types beyond text, and the model capability each needs
PART_NEEDS = {"image_url": "vision", "input_audio": "audio", "file": "file"}
PART_TYPES = ("text", *PART_NEEDS)


def parse_tools(body: Mapping[str, Any], needs: set[str]) -> list[dict[str, Any]] | None:
    """The request's ``tools`` (or legacy ``functions``), checked and bounded."""
    name = "tools" if body.get("tools") is not None else "functions"
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise bad(f"'{name}' must be a list of objects", name)
    if len(value) > MAX_TOOLS:
        raise bad(f"at most {MAX_TOOLS} {name} are accepted", name)
    if len(orjson.dumps(value)) > MAX_TOOLS_BYTES:
        raise bad(f"'{name}' takes more than {MAX_TOOLS_BYTES} bytes of JSON", name)
    for i, tool in enumerate(value):
        fn = tool.get("function") if name == "tools" else tool
        if tool.get("type", "function") == "function" and not (
            isinstance(fn, dict) and isinstance(fn.get("name"), str) and fn["name"]
        ):
            raise bad(f"{name}[{i}] must name its function", name)
    if value:
        needs.add("function_calling")
    return value


def parse_parts(parts: list[Any], where: str, needs: set[str]) -> str | list[dict[str, Any]]:
    """A message's content parts: the text joined when every part is text, else the parts
    as sent (each checked and bounded), noting the capabilities they need."""
    if len(parts) > MAX_PARTS:
        raise bad(f"{where}.content has more than {MAX_PARTS} parts", f"{where}.content")
    texts: list[str] = []
    for j, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in PART_TYPES:
            raise bad(
                f"{where}.content[{j}].type must be one of {', '.join(PART_TYPES)}",
                f"{where}.content",
                "unsupported_content",
            )
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise bad(f"{where}.content[{j}].text must be a string", f"{where}.content")
            texts.append(part["text"])
            continue
        needs.add(PART_NEEDS[kind])
        inner = part.get(kind)
        if not isinstance(inner, dict):
            raise bad(f"{where}.content[{j}].{kind} must be an object", f"{where}.content")
        url = inner.get("url") if kind == "image_url" else None
        if kind == "image_url" and not isinstance(url, str):
            raise bad(f"{where}.content[{j}].image_url.url must be a string", f"{where}.content")
        data = url or inner.get("data") or inner.get("file_data") or ""
        if isinstance(data, str) and len(data) > MAX_DATA_URL:
            raise bad(
                f"{where}.content[{j}] carries more than {MAX_DATA_URL} bytes inline",
                f"{where}.content",
            )
    if len(texts) == len(parts):
        return "".join(texts)
    return [dict(p) for p in parts]
