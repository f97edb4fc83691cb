"""The requests behind :mod:`gwconfig.api_client` (shared by the sync and the async client)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from gwconfig.api_client.errors import error_for

API_PREFIX = "/api/v1"
DEFAULT_PAGE_SIZE = 100


class Resource(dict[str, Any]):
    """A JSON object the API returned, with its ``etag`` (None when it has none)."""

    etag: str | None = None


@dataclass(frozen=True)
class Call:
    """One request: method, path under the API root (or a ``next`` link), query, body, headers."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def api_root(base_url: str) -> str:
    """``base_url`` without a trailing slash, with ``/api/v1`` added when it has no path."""
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("base_url must be an http(s) URL, e.g. https://gateway:8080/api/v1")
    root = str(url.copy_with(query=None, fragment=None)).rstrip("/")
    return root + API_PREFIX if url.path in ("", "/") else root


def decoded(response: httpx.Response) -> Any:
    """The JSON of a successful response (a :class:`Resource` for objects) or an ApiError."""
    if response.status_code >= 400:
        raise error_for(response)
    if not response.content:
        return None
    body = response.json()
    if isinstance(body, dict):
        out = Resource(body)
        out.etag = response.headers.get("etag")
        return out
    return body


def _seg(value: str) -> str:
    return quote(value, safe="")


def _env(environment: str) -> dict[str, Any]:
    return {"environment": environment} if environment != "default" else {}


def _match(if_match: str | None) -> dict[str, str]:
    return {"If-Match": if_match} if if_match else {}


def provider(pid: str) -> str:
    """The path of a provider."""
    return f"/providers/{_seg(pid)}"


def model(pid: str, model_id: str) -> str:
    """The path of a model: its id keeps its ``/``, ``:`` and ``@``."""
    return f"{provider(pid)}/models/{quote(model_id, safe='/:@')}"


def providers_page(tag: str | None, page_size: int) -> Call:
    """The first page of providers."""
    return Call("GET", "/providers", {"limit": page_size, **({"tag": tag} if tag else {})})


def revisions_page(page_size: int) -> Call:
    """The first page of revisions."""
    return Call("GET", "/revisions", {"limit": page_size})


def get(path: str, params: dict[str, Any] | None = None) -> Call:
    """A GET."""
    return Call("GET", path, params or {})


def post(path: str, body: Any) -> Call:
    """A POST of a JSON body."""
    return Call("POST", path, json=body)


def put(path: str, body: Any, if_match: str | None) -> Call:
    """A PUT of a JSON body, conditional on ``if_match``."""
    return Call("PUT", path, json=body, headers=_match(if_match))


def delete(path: str, if_match: str | None, environment: str = "default") -> Call:
    """A DELETE, conditional on ``if_match``."""
    return Call("DELETE", path, _env(environment), headers=_match(if_match))


def key(pid: str, name: str) -> str:
    """The path of an API key."""
    return f"{provider(pid)}/api-keys/{_seg(name)}"


def parameter(pid: str, name: str) -> str:
    """The path of a connection parameter."""
    return f"{provider(pid)}/connection-parameters/{_seg(name)}"


def environment(value: str) -> dict[str, Any]:
    """The query of a key or parameter of ``environment``."""
    return _env(value)
