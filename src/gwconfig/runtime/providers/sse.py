"""Server-sent events: :func:`iter_sse` (``(event, data)`` text pairs) and :func:`raw_events`
(each event's data and its raw bytes, a batch per piece read), within the same caps.

:func:`raw_events` is the relay's reader: it keeps each event's bytes as received (line breaks
made ``\\n``) so an answer in the client's own API is passed on without being re-encoded, and
hands over every event that one read from the upstream completed at once (one write to the
client per read, not per event).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson

from gwconfig.canonical import DEFAULT_MAX_RESPONSE_BYTES
from gwconfig.runtime.errors import DeadlineExceededError, ProviderResponseError

#: The longest line, and the most data in one event, of a streamed reply.
MAX_EVENT_BYTES = 1024 * 1024


class Body(Protocol):
    """A response whose body comes in pieces (httpx's, or the fast client's)."""

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body's pieces."""
        ...


def too_large(cap: int, why: str) -> ProviderResponseError:
    """The error of a reply past ``max_response_bytes``."""
    return ProviderResponseError(
        f"the reply is larger than max_response_bytes ({cap} bytes; {why})", retryable=False
    )


#: one event: its name, its data (``data:`` lines joined) and its bytes (ending ``\n\n``)
RawEvent = tuple[bytes, bytes, bytes]


def _parse(block: bytes) -> RawEvent | None:
    name = b"message"
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip()
    if not data:
        return None
    return name, data[0] if len(data) == 1 else b"\n".join(data), block + b"\n\n"


async def raw_events(
    resp: Body, max_bytes: int, deadline: float | None = None
) -> AsyncIterator[list[RawEvent]]:
    """The events of a ``text/event-stream`` body, a list per piece read (those it ended).

    At most ``max_bytes`` in all and :data:`MAX_EVENT_BYTES` per event (each a
    ProviderResponseError); past ``deadline`` (``time.monotonic()``; None when the response
    enforces it itself), a DeadlineExceededError.
    """
    event_cap = min(MAX_EVENT_BYTES, max_bytes)
    pieces = resp.aiter_bytes()
    pending = b""
    total = 0
    try:
        while True:
            piece = await next_piece(pieces, deadline)
            if piece is None:
                break
            total += len(piece)
            if total > max_bytes:
                raise too_large(max_bytes, "the stream goes on past it")
            buf = pending + piece if pending else piece
            if b"\r" in buf:
                held = buf.endswith(b"\r")  # maybe the first half of \r\n
                if held:
                    buf = buf[:-1]
                buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                if held:
                    buf += b"\r"
            blocks = buf.split(b"\n\n")
            pending = blocks.pop()
            if len(pending) > event_cap:
                what = "event is larger" if b"\n" in pending else "line is longer"
                raise ProviderResponseError(
                    f"a streamed {what} than {event_cap} bytes", retryable=False
                )
            batch = []
            for block in blocks:
                if len(block) > event_cap:
                    raise ProviderResponseError(
                        f"a streamed event is larger than {event_cap} bytes", retryable=False
                    )
                if block[:6] == b"data: " and b"\n" not in block:  # the usual event: one line
                    batch.append((b"message", block[6:], block + b"\n\n"))
                    continue
                event = _parse(block.lstrip(b"\n"))
                if event is not None:
                    batch.append(event)
            if batch:
                yield batch
        last = _parse(pending.rstrip(b"\r\n").lstrip(b"\n"))
        if last is not None:
            yield [last]
    finally:
        await pieces.aclose()  # type: ignore[attr-defined]


async def iter_sse(
    resp: Body, max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES, deadline: float | None = None
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
    resp: Body, max_bytes: int, line_cap: int, deadline: float | None
) -> AsyncIterator[str]:
    """Lines of the body (``\\n``, ``\\r\\n`` or ``\\r``), counting bytes against the caps."""
    pieces = resp.aiter_bytes()
    pending: list[bytes] = []  # the start of a line not ended yet
    pending_len = total = 0
    while True:
        piece = await next_piece(pieces, deadline)
        if piece is None:
            break
        total += len(piece)
        if total > max_bytes:
            raise too_large(max_bytes, "the stream goes on past it")
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


def load_event(data: str | bytes) -> Any:
    """Decode one SSE data payload as JSON, or raise ProviderResponseError."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProviderResponseError("a streamed event is not JSON") from exc


async def next_piece(pieces: AsyncIterator[bytes], deadline: float | None) -> bytes | None:
    """The body's next piece (None at its end) by ``deadline`` (``time.monotonic()``; None:
    none), else :class:`DeadlineExceededError`."""
    try:
        if deadline is None:
            return await pieces.__anext__()
        async with asyncio.timeout_at(deadline):
            return await pieces.__anext__()
    except StopAsyncIteration:
        return None
    except TimeoutError as exc:
        raise DeadlineExceededError("the request deadline was reached (streaming)") from exc
