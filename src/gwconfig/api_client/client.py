"""The sync and the async client: each API method once, sent over ``httpx``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable
from typing import Any, Generic, TypeVar

import httpx

from gwconfig.api_client import calls as c
from gwconfig.api_client.calls import DEFAULT_PAGE_SIZE, Call, Resource, api_root, decoded
from gwconfig.api_client.errors import ConnectionFailed

#: the most pages one listing follows (a bound against a server that never ends)
MAX_PAGES = 100_000

#: what a call returns: a Resource and a list (sync), or awaitables of them (async)
R = TypeVar("R")
L = TypeVar("L")


class _Base:
    def __init__(self, base_url: str, api_key: str | None) -> None:
        self.base_url = api_root(base_url)
        self._headers = {"Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    def _url(self, call: Call) -> str:
        if "://" in call.path:
            return call.path
        if call.path.startswith(c.API_PREFIX + "/"):  # a 'next' link: under our root (a proxy
            return self.base_url + call.path[len(c.API_PREFIX) :]  # may serve it elsewhere)
        return self.base_url + call.path

    def _request(self, call: Call) -> dict[str, Any]:
        """The keyword arguments of ``httpx`` ``request`` for ``call``."""
        return {
            "method": call.method,
            "url": self._url(call),
            "params": call.params or None,
            "json": call.json,
            "headers": call.headers or None,
        }

    @staticmethod
    def _next(page: Any) -> Call | None:
        nxt = page.get("next") if isinstance(page, dict) else None
        return Call("GET", nxt) if isinstance(nxt, str) and nxt else None

    def __repr__(self) -> str:  # never the token
        return f"{type(self).__name__}({self.base_url!r})"


def _resource(out: Any) -> Resource:
    return out if isinstance(out, Resource) else Resource()


def _listed(out: Any) -> list[dict[str, Any]]:
    return list(out) if isinstance(out, list) else []


class _Api(_Base, Generic[R, L], ABC):
    """The API's methods, once: each builds its :class:`Call`; the subclass sends it."""

    @abstractmethod
    def _one(self, call: Call) -> R:
        """Send ``call`` and return the one resource it answers."""

    @abstractmethod
    def _list(self, call: Call) -> L:
        """Send ``call`` and return the list it answers."""

    @abstractmethod
    def _pages(self, call: Call | None) -> L:
        """Send ``call`` and follow its ``next`` links; every item of every page."""

    def get_providers(self, *, tag: str | None = None, page_size: int = DEFAULT_PAGE_SIZE) -> L:
        """Every provider (without children), following the pages; only ``tag``'s if given."""
        return self._pages(c.providers_page(tag, page_size))

    def get_provider(self, provider_id: str) -> R:
        """One provider with its models, API keys (masked) and connection parameters."""
        return self._one(c.get(c.provider(provider_id)))

    def create_provider(self, provider_data: dict[str, Any]) -> R:
        """Create a provider with nested ``models``, ``api_key``/``api_keys`` and parameters."""
        return self._one(c.post("/providers", provider_data))

    def update_provider(
        self, provider_id: str, provider_data: dict[str, Any], *, if_match: str | None = None
    ) -> R:
        """Change provider-level fields; ``if_match`` (an etag) refuses a concurrent change."""
        return self._one(c.put(c.provider(provider_id), provider_data, if_match))

    def delete_provider(self, provider_id: str, *, if_match: str | None = None) -> R:
        """Delete a provider and its children."""
        return self._one(c.delete(c.provider(provider_id), if_match))

    def get_models(self, provider_id: str) -> L:
        """The provider's models."""
        return self._list(c.get(c.provider(provider_id) + "/models"))

    def get_model(self, provider_id: str, model_id: str) -> R:
        """One model (its id may contain ``/``)."""
        return self._one(c.get(c.model(provider_id, model_id)))

    def create_model(self, provider_id: str, model_data: dict[str, Any]) -> R:
        """Add a model to the provider."""
        return self._one(c.post(c.provider(provider_id) + "/models", model_data))

    def update_model(
        self,
        provider_id: str,
        model_id: str,
        model_data: dict[str, Any],
        *,
        if_match: str | None = None,
    ) -> R:
        """Change a model's fields (those given)."""
        return self._one(c.put(c.model(provider_id, model_id), model_data, if_match))

    def delete_model(self, provider_id: str, model_id: str, *, if_match: str | None = None) -> R:
        """Delete a model."""
        return self._one(c.delete(c.model(provider_id, model_id), if_match))

    def get_api_keys(self, provider_id: str) -> L:
        """The provider's API keys: name, environment, expiry, short fingerprint (never a value)."""
        return self._list(c.get(c.provider(provider_id) + "/api-keys"))

    def get_api_key(
        self, provider_id: str, name: str = "default", environment: str = "default"
    ) -> R:
        """One API key (masked)."""
        return self._one(c.get(c.key(provider_id, name), c.environment(environment)))

    def create_api_key(self, provider_id: str, api_key_data: dict[str, Any]) -> R:
        """Store an API key: ``{"key_value": ..., "name"?, "environment"?, "expires_at"?}``."""
        return self._one(c.post(c.provider(provider_id) + "/api-keys", api_key_data))

    def delete_api_key(
        self,
        provider_id: str,
        name: str = "default",
        environment: str = "default",
        *,
        if_match: str | None = None,
    ) -> R:
        """Delete an API key."""
        return self._one(c.delete(c.key(provider_id, name), if_match, environment))

    def get_connection_parameters(self, provider_id: str) -> L:
        """The provider's connection parameters (sensitive values masked)."""
        return self._list(c.get(c.provider(provider_id) + "/connection-parameters"))

    def get_connection_parameter(
        self, provider_id: str, param_name: str, environment: str = "default"
    ) -> R:
        """One connection parameter (masked when sensitive)."""
        return self._one(c.get(c.parameter(provider_id, param_name), c.environment(environment)))

    def set_connection_parameter(self, provider_id: str, param_data: dict[str, Any]) -> R:
        """Create or replace ``{"param_name", "param_value", "is_sensitive"?, "environment"?}``."""
        return self._one(c.post(c.provider(provider_id) + "/connection-parameters", param_data))

    def delete_connection_parameter(
        self,
        provider_id: str,
        param_name: str,
        environment: str = "default",
        *,
        if_match: str | None = None,
    ) -> R:
        """Delete a connection parameter."""
        return self._one(c.delete(c.parameter(provider_id, param_name), if_match, environment))

    def get_revisions(self, *, page_size: int = DEFAULT_PAGE_SIZE) -> L:
        """Every configuration revision, newest first (``gwconfig history``)."""
        return self._pages(c.revisions_page(page_size))

    def get_revision(self, number: int) -> R:
        """One revision with its configuration and changes (``gwconfig show-revision``)."""
        return self._one(c.get(f"/revisions/{int(number)}"))


class LLMGatewayClient(_Api[Resource, list[dict[str, Any]]]):
    """Synchronous client of the gateway's REST API (see :mod:`gwconfig.api_client`)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key)
        self._http = httpx.Client(headers=self._headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> LLMGatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, call: Call) -> Any:
        """Send ``call``; its decoded JSON, or an :class:`ApiError`."""
        try:
            response = self._http.request(**self._request(call))
        except httpx.HTTPError as exc:
            raise ConnectionFailed.of(exc, self.base_url) from None
        return decoded(response)

    def _one(self, call: Call) -> Resource:
        return _resource(self.send(call))

    def _list(self, call: Call) -> list[dict[str, Any]]:
        return _listed(self.send(call))

    def _pages(self, call: Call | None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            if call is None:
                break
            page = self.send(call)
            items.extend(page["items"])
            call = self._next(page)
        return items


class AsyncLLMGatewayClient(_Api[Awaitable[Resource], Awaitable[list[dict[str, Any]]]]):
    """The same API as :class:`LLMGatewayClient`, for ``asyncio`` code (``await`` each call)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key)
        self._http = httpx.AsyncClient(headers=self._headers, timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncLLMGatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send(self, call: Call) -> Any:
        """Send ``call``; its decoded JSON, or an :class:`ApiError`."""
        try:
            response = await self._http.request(**self._request(call))
        except httpx.HTTPError as exc:
            raise ConnectionFailed.of(exc, self.base_url) from None
        return decoded(response)

    async def _one(self, call: Call) -> Resource:
        return _resource(await self.send(call))

    async def _list(self, call: Call) -> list[dict[str, Any]]:
        return _listed(await self.send(call))

    async def _pages(self, call: Call | None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            if call is None:
                break
            page = await self.send(call)
            items.extend(page["items"])
            call = self._next(page)
        return items
