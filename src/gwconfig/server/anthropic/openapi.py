"""``POST /v1/messages`` and ``/v1/messages/count_tokens`` in the OpenAPI document (added with
the other ``/v1`` paths by :func:`gwconfig.server.openai.openapi.add_gateway_paths`)."""

from __future__ import annotations

from typing import Any

#: the security schemes of these paths: the token as ``x-api-key`` or as a bearer token
API_KEY = "AnthropicApiKey"
SCHEMES: dict[str, Any] = {API_KEY: {"type": "apiKey", "in": "header", "name": "x-api-key"}}
_SECURITY: list[dict[str, list[str]]] = [{API_KEY: []}, {"HTTPBearer": []}]
_JSON = "application/json"
_ERROR = {"$ref": "#/components/schemas/AnthropicError"}

SCHEMAS: dict[str, Any] = {
    "AnthropicError": {
        "type": "object",
        "description": "Anthropic's error shape",
        "properties": {
            "type": {"type": "string", "const": "error"},
            "error": {
                "type": "object",
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
                "required": ["type", "message"],
            },
        },
        "required": ["type", "error"],
    },
    "MessagesRequest": {
        "type": "object",
        "description": "Anthropic's Messages request (the fields taken: docs/serving.md)",
        "properties": {
            "model": {
                "type": "string",
                "description": "a route, an alias, provider/model, or a model id",
            },
            "messages": {"type": "array", "items": {"type": "object"}},
            "max_tokens": {"type": "integer", "minimum": 1},
            "stream": {"type": "boolean"},
        },
        "required": ["model", "messages", "max_tokens"],
        "additionalProperties": True,
    },
}


def _errors(*statuses: tuple[str, str]) -> dict[str, Any]:
    return {
        status: {"description": why, "content": {_JSON: {"schema": _ERROR}}}
        for status, why in statuses
    }


_COMMON = (
    ("401", "missing, unknown, revoked or expired token"),
    ("403", "the token lacks scope 'invoke', or may not use that model"),
    ("404", "no route, alias or model of that name"),
    ("429", "the token's rpm, or every target's rate limit"),
    ("502", "every target failed"),
)

PATHS: dict[str, Any] = {
    "/v1/messages": {
        "post": {
            "tags": ["anthropic"],
            "summary": "A message, plain or streamed (Anthropic Messages API)",
            "description": (
                "Anthropic's Messages API over the gateway's routes, aliases and models (scope "
                "'invoke'): passed through to Anthropic models, translated to chat completions "
                'for OpenAI-shaped ones. With "stream": true, Anthropic\'s server-sent events.'
            ),
            "operationId": "create_message",
            "security": _SECURITY,
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": {"$ref": "#/components/schemas/MessagesRequest"}}},
            },
            "responses": {
                "200": {
                    "description": "a message object, or its event stream",
                    "content": {_JSON: {"schema": {"type": "object"}}, "text/event-stream": {}},
                },
                **_errors(
                    ("400", "the body is not valid, or the model's provider cannot carry a field"),
                    *_COMMON,
                ),
            },
        }
    },
    "/v1/messages/count_tokens": {
        "post": {
            "tags": ["anthropic"],
            "summary": "The input tokens of a Messages request (Anthropic models)",
            "description": "Forwarded to Anthropic models; other provider types answer 400.",
            "operationId": "count_message_tokens",
            "security": _SECURITY,
            "requestBody": {"required": True, "content": {_JSON: {"schema": {"type": "object"}}}},
            "responses": {
                "200": {
                    "description": '{"input_tokens": n}',
                    "content": {_JSON: {"schema": {"type": "object"}}},
                },
                **_errors(
                    ("400", "the body is not valid, or the model is not an Anthropic one"),
                    *_COMMON,
                ),
            },
        }
    },
}
