"""The ``/v1`` endpoints and ``GET /metrics`` in the OpenAPI document.

The plain ASGI front (:mod:`gwconfig.server.openai.app`) answers these paths before FastAPI
routes anything, so FastAPI does not know them: :func:`add_gateway_paths` adds them to the
document FastAPI generates (``/openapi.json``, ``/docs``), with the same bearer scheme as the
rest of the API.
"""

from __future__ import annotations

import copy
from typing import Any

from gwconfig.server.anthropic import openapi as messages

BEARER = "HTTPBearer"
_SECURITY: list[dict[str, list[str]]] = [{BEARER: []}]
_JSON = "application/json"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*statuses: tuple[str, str]) -> dict[str, Any]:
    return {
        status: {"description": why, "content": {_JSON: {"schema": _ref("OpenAIError")}}}
        for status, why in statuses
    }


_DENIED = (
    ("401", "missing, unknown, revoked or expired token"),
    ("403", "the token lacks scope 'invoke'"),
)

SCHEMAS: dict[str, Any] = {
    "OpenAIError": {
        "type": "object",
        "description": "OpenAI's error shape",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "code": {"type": ["string", "null"]},
                    "param": {"type": ["string", "null"]},
                },
                "required": ["message", "type", "code", "param"],
            }
        },
        "required": ["error"],
    },
    "OpenAIModel": {
        "type": "object",
        "description": "OpenAI's model object",
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string", "const": "model"},
            "created": {"type": "integer"},
            "owned_by": {
                "type": "string",
                "description": "'gwconfig' for a route, else the provider",
            },
        },
        "required": ["id", "object", "created", "owned_by"],
    },
    "OpenAIModelList": {
        "type": "object",
        "properties": {
            "object": {"type": "string", "const": "list"},
            "data": {"type": "array", "items": _ref("OpenAIModel")},
        },
        "required": ["object", "data"],
    },
    "ChatCompletionRequest": {
        "type": "object",
        "description": "OpenAI's chat completion request (the fields taken: docs/serving.md)",
        "properties": {
            "model": {
                "type": "string",
                "description": "a route, an alias, provider/model, or a model id",
            },
            "messages": {"type": "array", "items": {"type": "object"}},
            "stream": {"type": "boolean"},
        },
        "required": ["model", "messages"],
        "additionalProperties": True,
    },
}

PATHS: dict[str, Any] = {
    "/v1/chat/completions": {
        "post": {
            "tags": ["openai"],
            "summary": "A chat completion, plain or streamed (OpenAI-compatible)",
            "description": (
                "OpenAI's chat completions API over the gateway's routes, aliases and models "
                "(scope 'invoke'); with \"stream\": true, server-sent events ending with "
                "data: [DONE]. Answers carry x-gwconfig-provider, x-gwconfig-attempts and "
                "x-gwconfig-revision."
            ),
            "operationId": "create_chat_completion",
            "security": _SECURITY,
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": _ref("ChatCompletionRequest")}},
            },
            "responses": {
                "200": {
                    "description": "a chat.completion object, or its chat.completion.chunk stream",
                    "content": {_JSON: {"schema": {"type": "object"}}, "text/event-stream": {}},
                },
                **_errors(
                    ("400", "the body is not valid, or the provider rejected the request"),
                    *_DENIED,
                    ("404", "no route, alias or model of that name"),
                    ("429", "the token's rpm, or every target's rate limit"),
                    ("502", "every target failed"),
                    ("504", "the request deadline passed"),
                ),
            },
        }
    },
    "/v1/embeddings": {
        "post": {
            "tags": ["openai"],
            "summary": "Embeddings (OpenAI-compatible)",
            "description": (
                "OpenAI's embeddings API over the gateway's routes and models of model_type "
                "'embedding' on OpenAI-shaped providers (scope 'invoke')."
            ),
            "operationId": "create_embeddings",
            "security": _SECURITY,
            "requestBody": {"required": True, "content": {_JSON: {"schema": {"type": "object"}}}},
            "responses": {
                "200": {
                    "description": "a list of embedding objects",
                    "content": {_JSON: {"schema": {"type": "object"}}},
                },
                **_errors(
                    ("400", "the body is not valid, or the model or provider has no embeddings"),
                    *_DENIED,
                    ("404", "no route, alias or model of that name"),
                    ("429", "the token's rpm, or every target's rate limit"),
                    ("502", "every target failed"),
                ),
            },
        }
    },
    "/v1/models": {
        "get": {
            "tags": ["openai"],
            "summary": "The models the token may use (OpenAI-compatible)",
            "description": "The routes, aliases and provider/model ids the token may use.",
            "operationId": "list_models",
            "security": _SECURITY,
            "responses": {
                "200": {
                    "description": "a list of model objects",
                    "content": {_JSON: {"schema": _ref("OpenAIModelList")}},
                },
                **_errors(*_DENIED),
            },
        }
    },
    "/v1/models/{model_id}": {
        "get": {
            "tags": ["openai"],
            "summary": "One model the token may use (OpenAI-compatible)",
            "description": (
                "The model object of a name the token may use: one /v1/models lists, or any "
                "other name /v1/chat/completions takes from it. The id may hold '/'."
            ),
            "operationId": "retrieve_model",
            "security": _SECURITY,
            "parameters": [
                {
                    "name": "model_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "the model's name, e.g. openai/gpt-4o",
                }
            ],
            "responses": {
                "200": {
                    "description": "the model object",
                    "content": {_JSON: {"schema": _ref("OpenAIModel")}},
                },
                **_errors(*_DENIED, ("404", "no such model, or one the token may not use")),
            },
        }
    },
    "/metrics": {
        "get": {
            "tags": ["metrics"],
            "summary": "Prometheus metrics (any valid token)",
            "description": "This worker's metrics in Prometheus's text exposition format.",
            "operationId": "metrics",
            "security": _SECURITY,
            "responses": {
                "200": {
                    "description": "the text exposition",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **_errors(("401", "missing, unknown, revoked or expired token")),
            },
        }
    },
}


def add_gateway_paths(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (an OpenAPI document) with :data:`PATHS`, :data:`SCHEMAS`, the Messages API's
    and their security schemes added (in place; returned)."""
    paths = schema.setdefault("paths", {})
    paths.update(copy.deepcopy(PATHS))
    paths.update(copy.deepcopy(messages.PATHS))
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(copy.deepcopy(SCHEMAS))
    components["schemas"].update(copy.deepcopy(messages.SCHEMAS))
    schemes = components.setdefault("securitySchemes", {})
    schemes.setdefault(BEARER, {"type": "http", "scheme": "bearer"})
    schemes.update(copy.deepcopy(messages.SCHEMES))
    return schema
