"""Shared HTTP machinery: one pooled ``httpx.AsyncClient`` per provider, error mapping, SSE."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from gwconfig.runtime.config import ProviderConfig
from gwconfig.runtime.errors import (
    AuthenticationError,
    BadRequestError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from gwconfig.runtime.providers.base import BaseProvider, ProviderCall
from gwconfig.runtime.resilience import parse_retry_after

_JSON_HEADERS = {"content-type": "application/json"}


class HTTPProvider(BaseProvider):
    """A provider reached over HTTP; subclasses build the URL, headers and body, parse replies."""

    default_api_base: str = ""

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.api_base = (config.api_base or self.default_api_base).rstrip("/")
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        """The provider's pooled HTTP client (created on first use)."""
        if self._client is None:
            s = self.config.settings
            limit = s.max_concurrent_requests or 100
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(s.timeout_seconds, connect=s.connect_timeout_seconds),
                limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
                headers=dict(self.config.headers),
            )
        return self._client

    async def aclose(self) -> None:
        """Close the pooled client."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    # -- requests ---------------------------------------------------------------------------------

    def _timeout(self, call: ProviderCall) -> float:
        return call.timeout_seconds or self.config.settings.timeout_seconds

    async def post_json(
        self, url: str, body: dict[str, Any], headers: dict[str, str], call: ProviderCall
    ) -> Any:
        """POST ``body``; return the decoded JSON reply or raise a typed ProviderError."""
        timeout = self._timeout(call)
        try:
            async with asyncio.timeout(timeout):
                resp = await self.client.post(
                    url,
                    content=orjson.dumps(body),
                    headers={**_JSON_HEADERS, **headers},
                    timeout=timeout,
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise ProviderTimeoutError(f"no answer within {timeout:g}s") from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(f"connection failed: {type(exc).__name__}") from exc
        if resp.status_code >= 400:
            raise self.status_error(resp.status_code, resp.content, resp.headers, call)
        try:
            return orjson.loads(resp.content)
        except orjson.JSONDecodeError as exc:
            raise ProviderResponseError(
                f"HTTP {resp.status_code} with a body that is not JSON", status=resp.status_code
            ) from exc

    @contextlib.asynccontextmanager
    async def open_stream(
        self, url: str, body: dict[str, Any], headers: dict[str, str], call: ProviderCall
    ) -> AsyncIterator[httpx.Response]:
        """POST ``body`` and yield the streaming response once its status is known to be good."""
        timeout = self._timeout(call)
        request = self.client.build_request(
            "POST",
            url,
            content=orjson.dumps(body),
            headers={**_JSON_HEADERS, **headers},
            timeout=timeout,
        )
        try:
            resp = await self.client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise ProviderTimeoutError(f"no answer within {timeout:g}s") from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(f"connection failed: {type(exc).__name__}") from exc
        try:
            if resp.status_code >= 400:
                content = await resp.aread()
                raise self.status_error(resp.status_code, content, resp.headers, call)
            yield resp
        except httpx.TimeoutException as exc:
            raise ProviderTimeoutError(f"stream stalled for more than {timeout:g}s") from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(f"stream broken: {type(exc).__name__}") from exc
        finally:
            await resp.aclose()

    def status_error(
        self, status: int, content: bytes, headers: httpx.Headers, call: ProviderCall
    ) -> ProviderError:
        """The typed error for an HTTP error status (message scrubbed of the API key)."""
        detail = _error_detail(content)
        if call.api_key and detail:
            detail = detail.replace(call.api_key, "***")
        message = f"HTTP {status}" + (f": {detail}" if detail else "")
        retry_after = parse_retry_after(headers.get("retry-after"))
        if status in self.config.settings.retry_on_status:
            return ProviderUnavailableError(
                message, status=status, retry_after=retry_after, retryable=True
            )
        if status in (401, 403):
            return AuthenticationError(message, status=status)
        if status in (400, 413, 422):
            return BadRequestError(message, status=status)
        if status == 429 or status >= 500:
            return ProviderUnavailableError(message, status=status, retryable=False)
        return ProviderError(message, status=status)


def _error_detail(content: bytes) -> str:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content[:200].decode("utf-8", "replace").strip()
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or "")[:200]
    if isinstance(err, str):
        return err[:200]
    return ""


async def iter_sse(resp: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """Parse a ``text/event-stream`` body into ``(event, data)`` pairs."""
    event = "message"
    data: list[str] = []
    async for line in resp.aiter_lines():
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield event, "\n".join(data)


def load_event(data: str) -> Any:
    """Decode one SSE data payload as JSON, or raise ProviderResponseError."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProviderResponseError("a streamed event is not JSON") from exc
