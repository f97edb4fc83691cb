"""Shared HTTP machinery: the fast client (:mod:`.fastpost`, :mod:`.faststream`) where it
applies, else one pooled ``httpx.AsyncClient`` per provider; error mapping, SSE."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import orjson

from gwconfig.runtime.config.gateway import ProviderConfig
from gwconfig.runtime.errors import (
    AuthenticationError,
    BadRequestError,
    DeadlineExceededError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from gwconfig.runtime.providers.base import BaseProvider, ProviderCall
from gwconfig.runtime.providers.fastpost import BadResponse, FastPool, TooLarge, usable
from gwconfig.runtime.providers.faststream import Stalled, Streamed
from gwconfig.runtime.providers.faststream import open_stream as open_fast_stream
from gwconfig.runtime.providers.sse import MAX_EVENT_BYTES as MAX_EVENT_BYTES
from gwconfig.runtime.providers.sse import Body, RawEvent, iter_sse, raw_events
from gwconfig.runtime.providers.sse import load_event as load_event
from gwconfig.runtime.providers.sse import too_large as _too_large
from gwconfig.runtime.resilience import parse_retry_after

_JSON_HEADERS = {"content-type": "application/json"}
#: How much of an error body is read (the rest is not needed for its message).
ERROR_BODY_BYTES = 64 * 1024
#: Provider error details are cut to this many characters (after scrubbing).
DETAIL_CHARS = 200


class HTTPProvider(BaseProvider):
    """A provider reached over HTTP; subclasses build the URL, headers and body, parse replies."""

    default_api_base: str = ""
    enforces_deadline = True

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.api_base = (config.api_base or self.default_api_base).rstrip("/")
        self._client: httpx.AsyncClient | None = None
        #: the lean client of post_json (None: not decided yet; False: httpx does it all)
        self._fast: FastPool | bool | None = None

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
        """Close the pooled clients."""
        fast = self._fast
        if isinstance(fast, FastPool):
            self._fast = None
            await fast.aclose()
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    # -- requests ---------------------------------------------------------------------------------

    def _post(
        self, url: str, body: dict[str, Any], headers: dict[str, str], call: ProviderCall
    ) -> tuple[httpx.Request, float, bool]:
        """The JSON POST of ``body`` to ``url``, its timeout, and whether the deadline sets it."""
        timeout, by_deadline = self._limits(call)
        request = self.client.build_request(
            "POST",
            url,
            content=orjson.dumps(body),
            headers={**_JSON_HEADERS, **headers},
            timeout=timeout,
        )
        return request, timeout, by_deadline

    def _limits(self, call: ProviderCall) -> tuple[float, bool]:
        """The call's timeout, and whether it is the request's deadline that sets it."""
        timeout = call.timeout_seconds or self.config.settings.timeout_seconds
        if call.deadline is None:
            return timeout, False
        remaining = call.deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceededError("the request deadline has passed")
        return (remaining, True) if remaining < timeout else (timeout, False)

    @staticmethod
    def _timed_out(timeout: float, by_deadline: bool, what: str) -> ProviderError:
        if by_deadline:
            return DeadlineExceededError(f"the request deadline was reached ({what})")
        return ProviderTimeoutError(f"{what} within {timeout:g}s")

    def _pool(self, url: str) -> FastPool | None:
        """The fast client, when calls to ``url`` can use it (decided once per provider)."""
        fast = self._fast
        if fast is None:
            s = self.config.settings
            limit = s.max_concurrent_requests or 100
            fast = self._fast = FastPool(limit, s.connect_timeout_seconds) if usable(url) else False
        return fast if isinstance(fast, FastPool) else None

    def _fast_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        sent = {k.lower(): v for k, v in self.config.headers.items()}
        sent.update(_JSON_HEADERS)
        sent.update((k.lower(), v) for k, v in headers.items())
        return sent

    async def post_json(
        self, url: str, body: dict[str, Any], headers: dict[str, str], call: ProviderCall
    ) -> Any:
        """POST ``body``; return the decoded JSON reply or raise a typed ProviderError.

        The reply is read in pieces and refused past ``max_response_bytes``. Plain http(s)
        without a proxy goes through :class:`FastPool`; anything else through httpx.
        """
        fast = self._pool(url)
        if fast is not None:
            return await self._fast_post(fast, url, body, headers, call)
        request, timeout, by_deadline = self._post(url, body, headers, call)
        client = self.client
        try:
            async with asyncio.timeout(timeout):
                resp = await client.send(request, stream=True)
                try:
                    if resp.status_code >= 400:
                        content = await read_capped(resp, ERROR_BODY_BYTES, truncate=True)
                        raise self.status_error(resp.status_code, content, resp.headers, call)
                    content = await read_capped(resp, self.config.settings.max_response_bytes)
                finally:
                    await resp.aclose()
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise self._timed_out(timeout, by_deadline, "no answer") from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(f"connection failed: {type(exc).__name__}") from exc
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise ProviderResponseError(
                f"HTTP {resp.status_code} with a body that is not JSON", status=resp.status_code
            ) from exc

    async def _fast_post(
        self,
        pool: FastPool,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str],
        call: ProviderCall,
    ) -> Any:
        timeout, by_deadline = self._limits(call)
        sent = self._fast_headers(headers)
        cap = self.config.settings.max_response_bytes
        try:
            async with asyncio.timeout(timeout):
                status, got, content = await pool.post(
                    url, sent, orjson.dumps(body), cap, ERROR_BODY_BYTES
                )
        except TimeoutError as exc:
            raise self._timed_out(timeout, by_deadline, "no answer") from exc
        except TooLarge as exc:
            raise _too_large(cap, exc.why) from None
        except BadResponse as exc:
            raise ProviderResponseError(f"unreadable answer: {exc}") from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise ProviderUnavailableError(f"connection failed: {type(exc).__name__}") from exc
        if status >= 400:
            raise self.status_error(status, content, got, call)
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise ProviderResponseError(
                f"HTTP {status} with a body that is not JSON", status=status
            ) from exc

    @contextlib.asynccontextmanager
    async def open_stream(
        self, url: str, body: dict[str, Any], headers: dict[str, str], call: ProviderCall
    ) -> AsyncIterator[httpx.Response | Streamed]:
        """POST ``body`` and yield the streaming response once its status is known to be good.

        A reply that is JSON rather than server-sent events is an error (even with HTTP 200).
        Plain http(s) without a proxy goes through the fast client (as :meth:`post_json`);
        anything else through httpx.
        """
        fast = self._pool(url)
        if fast is not None:
            async with self._fast_stream(fast, url, body, headers, call) as streamed:
                yield streamed
            return
        request, timeout, by_deadline = self._post(url, body, headers, call)
        try:
            resp = await self.client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise self._timed_out(timeout, by_deadline, "no answer") from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(f"connection failed: {type(exc).__name__}") from exc
        try:
            if resp.status_code >= 400:
                content = await read_capped(resp, ERROR_BODY_BYTES, truncate=True)
                raise self.status_error(resp.status_code, content, resp.headers, call)
            if _is_json(resp.headers):
                content = await read_capped(resp, ERROR_BODY_BYTES, truncate=True)
                raise self._not_events(resp.status_code, resp.headers, content)
            yield resp
        except httpx.TimeoutException as exc:
            raise self._timed_out(timeout, by_deadline, "stream stalled: no data") from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(f"stream broken: {type(exc).__name__}") from exc
        finally:
            await resp.aclose()

    def _not_events(
        self, status: int, headers: Mapping[str, str], content: bytes
    ) -> ProviderResponseError:
        """The error of a JSON reply where server-sent events were asked for."""
        ctype = headers.get("content-type", "")
        detail = self.config.secrets.scrub(_error_detail(content), DETAIL_CHARS)
        return ProviderResponseError(
            f"HTTP {status} with a JSON body ({ctype.split(';')[0]}) instead of "
            "server-sent events" + (f": {detail}" if detail else ""),
            status=status,
        )

    @contextlib.asynccontextmanager
    async def _fast_stream(
        self,
        pool: FastPool,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str],
        call: ProviderCall,
    ) -> AsyncIterator[Streamed]:
        timeout, by_deadline = self._limits(call)
        cap = self.config.settings.max_response_bytes
        payload = orjson.dumps(body)
        try:
            async with asyncio.timeout(timeout):
                resp = await open_fast_stream(
                    pool, url, self._fast_headers(headers), payload, cap, timeout, call.deadline
                )
        except TimeoutError as exc:
            raise self._timed_out(timeout, by_deadline, "no answer") from exc
        except BadResponse as exc:
            raise ProviderResponseError(f"unreadable answer: {exc}") from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise ProviderUnavailableError(f"connection failed: {type(exc).__name__}") from exc
        try:
            if resp.status >= 400:
                content = await resp.read(ERROR_BODY_BYTES)
                raise self.status_error(resp.status, content, resp.headers, call)
            if _is_json(resp.headers):
                content = await resp.read(ERROR_BODY_BYTES)
                raise self._not_events(resp.status, resp.headers, content)
            yield resp
        except Stalled as exc:
            if exc.why == "deadline":
                raise DeadlineExceededError("the request deadline was reached (stream)") from None
            raise self._timed_out(timeout, False, "stream stalled: no data") from None
        except TooLarge as exc:
            raise _too_large(cap, exc.why) from None
        except BadResponse as exc:
            raise ProviderResponseError(f"unreadable answer: {exc}") from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise ProviderUnavailableError(f"stream broken: {type(exc).__name__}") from exc
        finally:
            resp.release()

    @staticmethod
    def finished(resp: Body) -> None:
        """Say the answer's end was read (e.g. ``data: [DONE]``): the fast client then reads
        the body's last bytes in the background and keeps the connection."""
        if isinstance(resp, Streamed):
            resp.finished()

    def events(self, resp: Body, call: ProviderCall) -> AsyncIterator[tuple[str, str]]:
        """The ``(event, data)`` pairs of a streamed reply, within the caps and the deadline."""
        return iter_sse(resp, self.config.settings.max_response_bytes, call.deadline)

    def raw_events(self, resp: Body, call: ProviderCall) -> AsyncIterator[list[RawEvent]]:
        """The events of a streamed reply as bytes (name, data, the event as received), a
        batch per piece read, within the caps and the deadline (see :func:`.sse.raw_events`)."""
        deadline = None if isinstance(resp, Streamed) else call.deadline
        return raw_events(resp, self.config.settings.max_response_bytes, deadline)

    def stream_error(self, error: Any) -> ProviderResponseError:
        """The error for an error event in a stream (message scrubbed of every secret)."""
        if isinstance(error, dict):
            error = error.get("message") or error.get("type") or error
        text = self.config.secrets.scrub(f"stream error: {error}", DETAIL_CHARS)
        return ProviderResponseError(text)

    def status_error(
        self, status: int, content: bytes, headers: Mapping[str, str], call: ProviderCall
    ) -> ProviderError:
        """The typed error for an HTTP error status (detail scrubbed of every secret, then cut)."""
        detail = self.config.secrets.scrub(_error_detail(content), DETAIL_CHARS)
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


def _is_json(headers: Mapping[str, str]) -> bool:
    ctype = headers.get("content-type", "")
    return "json" in ctype and "event-stream" not in ctype


def _error_detail(content: bytes) -> str:
    """The message of an error body, uncut (the scrubber sees all of it before the cut)."""
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content.decode("utf-8", "replace").strip()
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or "")
    if isinstance(err, str):
        return err
    return ""


async def read_capped(resp: httpx.Response, cap: int, *, truncate: bool = False) -> bytes:
    """The body of ``resp``, read in pieces: past ``cap`` bytes, an error (or cut: ``truncate``).

    Memory stays bounded by the cap: reading stops at the first piece past it.
    """
    if not truncate:
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise _too_large(cap, f"Content-Length {declared}")
    parts: list[bytes] = []
    total = 0
    async for piece in resp.aiter_bytes():
        total += len(piece)
        if total > cap:
            if not truncate:
                raise _too_large(cap, "the body goes on past it")
            parts.append(piece[: len(piece) - (total - cap)])
            break
        parts.append(piece)
    return b"".join(parts)
