"""OpenAI's ``/v1/embeddings`` wire format: the request checked and bounded, the answer passed
through from the upstream with only ``model`` rewritten."""

from __future__ import annotations

from typing import Any

import orjson

from gwconfig.runtime.messages import OPENAI, LLMConfig, LLMRequest, LLMResponse, WireBody
from gwconfig.server.openai.errors import bad, json_body
from gwconfig.server.openai.wire import ChatRequest

EMBEDDINGS = "/v1/embeddings"
#: the most inputs of one request (OpenAI's limit) and characters (or tokens) of one input
MAX_INPUTS = 2048
MAX_INPUT_LENGTH = 64 * 1024
MAX_DIMENSIONS = 65_536
FORMATS = ("float", "base64")


def parse_embeddings_request(raw: bytes) -> ChatRequest:
    """Parse and check an embeddings body; raise :class:`WireError` (400) when it is not
    valid. The body goes on as sent (``LLMRequest.wire``)."""
    body, model = json_body(raw)
    _inputs(body.get("input"))
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in FORMATS:
        raise bad("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    dims = body.get("dimensions")
    if dims is not None and (type(dims) is not int or not 1 <= dims <= MAX_DIMENSIONS):
        raise bad(f"'dimensions' must be an integer from 1 to {MAX_DIMENSIONS}", "dimensions")
    if not isinstance(body.get("user"), str | None):
        raise bad("'user' must be a string", "user")
    request = LLMRequest("", LLMConfig(model_identifier=model))
    request.wire = WireBody(OPENAI, body)
    return ChatRequest(model, False, False, request)


def _inputs(value: Any) -> None:
    """``input``: a string, a list of strings, a list of token ids, or a list of those lists."""
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list) and value:
        items = [value] if all(type(v) is int for v in value) else value
    else:
        raise bad("'input' must be a string or a non-empty list", "input")
    if len(items) > MAX_INPUTS:
        raise bad(f"at most {MAX_INPUTS} inputs are accepted", "input")
    for i, item in enumerate(items):
        ok = isinstance(item, str) or (
            isinstance(item, list) and bool(item) and all(type(t) is int for t in item)
        )
        if not ok or not 0 < len(item) <= MAX_INPUT_LENGTH:
            raise bad(
                f"input[{i}] must be a non-empty string or list of token ids of at most "
                f"{MAX_INPUT_LENGTH} items",
                "input",
            )


def embeddings_body(response: LLMResponse, model: str) -> bytes:
    """The upstream's embeddings document, answering for ``model`` as asked."""
    wire = response.wire
    doc = dict(wire.body) if wire is not None else {"object": "list", "data": []}
    doc["model"] = model
    return orjson.dumps(doc)
