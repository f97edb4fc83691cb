"""``LLMGatewayClient(base_url, api_key)``: the migration guide's API client, on httpx.

It speaks the REST API of ``gwconfig serve`` (``/api/v1``, see ``docs/api.md``) with Bearer
authentication. Methods return the guide's plain dicts; each object a call returns is a
:class:`Resource` (a ``dict``) whose ``etag`` can be passed back as ``if_match=`` so that a
change never silently overwrites someone else's. Errors are :class:`ApiError` subclasses
carrying the server's RFC 9457 problem (``status``, ``title``, ``detail``, ``field_errors``).
:class:`AsyncLLMGatewayClient` is the same API for ``asyncio`` code. ``base_url`` is the API
root (``https://gateway:8080/api/v1``; a bare ``https://gateway:8080`` gets ``/api/v1``).
Other endpoints are reachable with :meth:`LLMGatewayClient.send` and a
:class:`~gwconfig.api_client.calls.Call`.

The package: :mod:`~gwconfig.api_client.client` (the two clients),
:mod:`~gwconfig.api_client.calls` (the requests, shared by both) and
:mod:`~gwconfig.api_client.errors` (one error class per kind of problem); import from here.
"""

from gwconfig.api_client.calls import Call, Resource
from gwconfig.api_client.client import AsyncLLMGatewayClient, LLMGatewayClient
from gwconfig.api_client.errors import (
    ApiError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    PreconditionFailed,
    ReadOnly,
    ServerError,
    Unauthorized,
    ValidationFailed,
)

__all__ = [
    "ApiError",
    "AsyncLLMGatewayClient",
    "Call",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "LLMGatewayClient",
    "NotFound",
    "PreconditionFailed",
    "ReadOnly",
    "Resource",
    "ServerError",
    "Unauthorized",
    "ValidationFailed",
]
