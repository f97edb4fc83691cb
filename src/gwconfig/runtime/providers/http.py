"""Shared HTTP machinery: one pooled ``httpx.AsyncClient`` per provider, error mapping, SSE."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import orjson

from gwconfig.canonical import DEFAULT_MAX_RESPONSE_BYTES
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
from gwconfig.runtime.resilience import parse_retry_after

_JSON_HEADERS = {"content-type": "application/json"}
#: How much of an error body is read (the rest is not needed for its message).
ERROR_BODY_BYTES = 64 * 1024
#: The longest line, and the most data in one event, of a streamed reply.
MAX_EVENT_BYTES = 1024 * 1024
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

    async def post_json(
        self, url: str, body: dict[str, Any], headers: dict[str, str], call: ProviderCall
    ) -> Any:
        """POST ``body``; return the decoded JSON reply or raise a typed ProviderError.

        The reply is read in pieces and refused past ``max_response_bytes``. Plain http(s)
        without a proxy goes through :class:`FastPool`; anything else through httpx.
        """
        fast = self._fast
        if fast is None:
            s = self.config.settings
            limit = s.max_concurrent_requests or 100
            fast = self._fast = FastPool(limit, s.connect_timeout_seconds) if usable(url) else False
        if fast:
            assert isinstance(fast, FastPool)
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
        sent = {k.lower(): v for k, v in self.config.headers.items()}
        sent.update(_JSON_HEADERS)
        sent.update((k.lower(), v) for k, v in headers.items())
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
    ) -> AsyncIterator[httpx.Response]:
        """POST ``body`` and yield the streaming response once its status is known to be good.

        A reply that is JSON rather than server-sent events is an error (even with HTTP 200).
        """
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
            ctype = resp.headers.get("content-type", "")
            if "json" in ctype and "event-stream" not in ctype:
                content = await read_capped(resp, ERROR_BODY_BYTES, truncate=True)
                detail = self.config.secrets.scrub(_error_detail(content), DETAIL_CHARS)
                raise ProviderResponseError(
                    f"HTTP {resp.status_code} with a JSON body ({ctype.split(';')[0]}) instead of "
                    "server-sent events" + (f": {detail}" if detail else ""),
                    status=resp.status_code,
                )
            yield resp
        except httpx.TimeoutException as exc:
            raise self._timed_out(timeout, by_deadline, "stream stalled: no data") from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(f"stream broken: {type(exc).__name__}") from exc
        finally:
            await resp.aclose()

    def events(self, resp: httpx.Response, call: ProviderCall) -> AsyncIterator[tuple[str, str]]:
        """The ``(event, data)`` pairs of a streamed reply, within the caps and the deadline."""
        return iter_sse(resp, self.config.settings.max_response_bytes, call.deadline)

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


def _too_large(cap: int, why: str) -> ProviderResponseError:
    return ProviderResponseError(
        f"the reply is larger than max_response_bytes ({cap} bytes; {why})", retryable=False
    )


async def iter_sse(
    resp: httpx.Response, max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES, deadline: float | None = None
) -> AsyncIterator[tuple[str, str]]:
    """Parse a ``text/event-stream`` body into ``(event, data)`` pairs.

    At most ``max_bytes`` in all, and at most :data:`MAX_EVENT_BYTES` per line and per event
    (each a ProviderResponseError); past ``deadline`` (``time.monotonic()``), a
    DeadlineExceededError.
    """
    event_cap = min(MAX_EVENT_BYTES, max_bytes)
    event = "message"
    data: list[str] = []
    size = 0
    async for line in _lines(resp, max_bytes, event_cap, deadline):
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data, size = "message", [], 0
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            size += len(value) + 1
            if size > event_cap:
                raise ProviderResponseError(
                    f"a streamed event is larger than {event_cap} bytes", retryable=False
                )
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield event, "\n".join(data)


async def _lines(
    resp: httpx.Response, max_bytes: int, line_cap: int, deadline: float | None
) -> AsyncIterator[str]:
    """Lines of the body (``\\n``, ``\\r\\n`` or ``\\r``), counting bytes against the caps."""
    pieces = resp.aiter_bytes()
    pending: list[bytes] = []  # the start of a line not ended yet
    pending_len = total = 0
    while True:
        try:
            if deadline is None:
                piece = await pieces.__anext__()
            else:
                async with asyncio.timeout_at(deadline):
                    piece = await pieces.__anext__()
        except StopAsyncIteration:
            break
        except TimeoutError as exc:
            raise DeadlineExceededError("the request deadline was reached (streaming)") from exc
        total += len(piece)
        if total > max_bytes:
            raise _too_large(max_bytes, "the stream goes on past it")
        if b"\n" in piece or b"\r" in piece:
            pending.append(piece)
            lines = b"".join(pending).splitlines(keepends=True)
            # the last line may be unfinished (and a final \r may be the first half of \r\n)
            pending = [lines.pop()] if not lines[-1].endswith(b"\n") else []
            pending_len = len(pending[0]) if pending else 0
            for line in lines:
                yield line.rstrip(b"\r\n").decode("utf-8", "replace")
        else:
            pending.append(piece)
            pending_len += len(piece)
        if pending_len > line_cap:
            raise ProviderResponseError(
                f"a streamed line is longer than {line_cap} bytes", retryable=False
            )
    for line in b"".join(pending).splitlines():
        yield line.decode("utf-8", "replace")


def load_event(data: str) -> Any:
    """Decode one SSE data payload as JSON, or raise ProviderResponseError."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProviderResponseError("a streamed event is not JSON") from exc
