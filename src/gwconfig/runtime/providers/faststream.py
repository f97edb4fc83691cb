"""Streamed answers over :class:`~gwconfig.runtime.providers.fastpost.FastPool`'s connections.

:func:`open_stream` sends one POST and returns a :class:`Streamed` once the status line and
headers are in; its body then comes in pieces (:meth:`Streamed.aiter_bytes`) as the upstream
sends them, framed by ``Transfer-Encoding: chunked``, by ``Content-Length`` or by the end of
the connection, gzip/deflate decoded, within a byte cap. One timer per stream watches it: no
data for ``stall`` seconds, or the request's deadline reached, drops the connection and the
waiting read raises :class:`Stalled` (no timer per read). The connection goes back to the pool
only when the body was read to its end on a keep-alive connection: when the caller says it has
the answer's end (:meth:`Streamed.finished`, e.g. after ``data: [DONE]``) the rest of the body
(the chunked encoding's last chunk) is read in the background; a stream left early (a client
that went away, an error, a cap) closes the connection.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping

from gwconfig.runtime.providers.fastpost import BadResponse, Conn, FastPool, TooLarge

#: the most trailer lines a chunked body may end with
MAX_TRAILERS = 64

#: the most bytes asked of the socket at once
PIECE = 64 * 1024
#: once the caller has the answer's end: how long, and how many bytes, the rest of the body
#: may take to be read (in the background) for the connection to be kept
DRAIN_SECONDS = 5.0
DRAIN_BYTES = 64 * 1024


class Stalled(Exception):
    """The stream stopped: ``why`` is ``"stall"`` (no data in time) or ``"deadline"``."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class Streamed:
    """An answer being read: ``status``, ``headers`` (lower-case names), then the body."""

    __slots__ = (
        "_cap",
        "_complete",
        "_conn",
        "_deadline",
        "_ended",
        "_frames",
        "_keep",
        "_key",
        "_last",
        "_pool",
        "_stall",
        "_timer",
        "_why",
        "headers",
        "status",
    )

    def __init__(
        self,
        pool: FastPool,
        key: tuple[str, str, int],
        conn: Conn,
        status: int,
        headers: dict[str, str],
        keep: bool,
        cap: int,
        stall: float,
        deadline: float | None,
    ) -> None:
        self.status = status
        self.headers = headers
        self._pool, self._key, self._conn, self._keep = pool, key, conn, keep
        self._cap, self._stall, self._deadline = cap, stall, deadline
        self._complete = self._ended = False
        self._frames = self._framed()
        self._why: str | None = None
        self._last = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None

    # -- the watch ----------------------------------------------------------------------------

    def _limit(self) -> tuple[float, str]:
        limit, why = self._last + self._stall, "stall"
        if self._deadline is not None and self._deadline < limit:
            limit, why = self._deadline, "deadline"
        return limit, why

    def _arm(self) -> None:
        limit, _ = self._limit()
        delay = max(limit - time.monotonic(), 0.0)
        self._timer = asyncio.get_running_loop().call_later(delay, self._watch)

    def _watch(self) -> None:
        limit, why = self._limit()
        if time.monotonic() >= limit:
            self._timer = None
            self._why = why
            self._conn.abort()
        else:
            self._arm()

    def _broken(self, exc: BaseException | None = None) -> BaseException:
        """The error of a read that ended early: :class:`Stalled` when the watch dropped it."""
        if self._why is not None:
            return Stalled(self._why)
        return exc or asyncio.IncompleteReadError(b"", None)

    # -- the body -----------------------------------------------------------------------------

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body in pieces as they come, decoded; past the cap, :class:`TooLarge`."""
        encoding = self.headers.get("content-encoding", "").strip().lower()
        if encoding in ("", "identity"):
            decoder = None
        elif encoding in ("gzip", "deflate"):
            wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
            decoder = zlib.decompressobj(wbits)
        else:
            raise BadResponse(f"unsupported Content-Encoding {encoding!r}")
        total, cap = 0, self._cap
        if self._timer is None and self._why is None:
            self._arm()
        frames = self._frames
        try:
            while True:
                try:
                    piece = await frames.__anext__()
                except StopAsyncIteration:
                    break
                if decoder is not None:
                    try:
                        piece = decoder.decompress(piece, cap + 1 - total)
                    except zlib.error:
                        raise BadResponse(f"the {encoding} body does not decode") from None
                    if decoder.unconsumed_tail:
                        raise TooLarge("the decoded stream goes on past it")
                total += len(piece)
                if total > cap:
                    raise TooLarge("the stream goes on past it")
                if piece:
                    yield piece
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    async def _framed(self) -> AsyncGenerator[bytes, None]:
        reader = self._conn.reader
        try:
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                async for piece in self._chunks(reader):
                    yield piece
                return
            declared = self.headers.get("content-length")
            if declared is not None:
                if not declared.isdigit():
                    raise BadResponse("Content-Length is not a number")
                left = int(declared)
                if left > self._cap:
                    raise TooLarge(f"Content-Length {declared}")
                while left:
                    piece = await reader.read(min(left, PIECE))
                    if not piece:
                        raise self._broken()
                    self._last = time.monotonic()
                    left -= len(piece)
                    self._complete = not left  # read whole, even if the caller stops here
                    yield piece
                self._complete = True
                return
            while piece := await reader.read(PIECE):  # the body ends with the connection
                self._last = time.monotonic()
                yield piece
            if self._why is not None:
                raise self._broken()
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise self._broken(exc) from None

    async def _chunks(self, reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
        while True:
            line = await reader.readuntil(b"\r\n")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadResponse("a chunk size is not a number") from None
            if size == 0:
                for _ in range(MAX_TRAILERS + 1):  # the trailers, left unread, up to the blank line
                    if await reader.readuntil(b"\r\n") == b"\r\n":
                        break
                else:
                    raise BadResponse(f"more than {MAX_TRAILERS} trailer lines")
                self._complete = True
                return
            while size:
                piece = await reader.read(min(size, PIECE))
                if not piece:
                    raise self._broken()
                self._last = time.monotonic()
                size -= len(piece)
                yield piece
            await reader.readexactly(2)

    async def read(self, cap: int) -> bytes:
        """At most ``cap`` bytes of the body (an error's), the rest left unread."""
        parts: list[bytes] = []
        total = 0
        pieces = self.aiter_bytes()
        try:
            async for piece in pieces:
                parts.append(piece)
                total += len(piece)
                if total >= cap:
                    break
        except TooLarge:  # past the cap: what was read is all an error message needs
            pass
        finally:
            await pieces.aclose()  # type: ignore[attr-defined]
        return b"".join(parts)[:cap]

    def finished(self) -> None:
        """The caller has read the answer's end: what is left of the body is framing, read
        in the background at :meth:`release` so the connection can be kept."""
        self._ended = True

    def release(self) -> None:
        """Give the connection back (read to its end, keep-alive) or close it; free the slot."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn, self._conn = self._conn, None  # type: ignore[assignment]
        if conn is None:
            return
        if not self._complete and self._ended and self._keep and conn.fresh():
            self._conn = conn
            self._pool.track(asyncio.get_running_loop().create_task(self._drain()))
            return
        self._close_frames()
        self._give_back(conn)

    def _close_frames(self) -> None:
        """Close the body's reader now (it waits on nothing once suspended), not by a task
        the event loop would run for it later."""
        closing = self._frames.aclose()
        try:
            closing.send(None)
        except StopIteration:
            return
        closing.close()  # it would wait on something: let the loop's finalizer do it

    def _give_back(self, conn: Conn) -> None:
        if self._complete and self._keep and conn.fresh():
            self._pool.keep(self._key, conn)
        else:
            conn.close()
        self._pool.slots.release()

    async def _drain(self) -> None:
        """Read the rest of the body (bounded), then give the connection back."""
        conn = self._conn
        total = 0
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                async for piece in self._frames:
                    total += len(piece)
                    if total > DRAIN_BYTES:
                        break
        except (Exception, asyncio.CancelledError):
            self._complete = False
        finally:
            self._conn = None  # type: ignore[assignment]
            self._close_frames()
            self._give_back(conn)


async def open_stream(
    pool: FastPool,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    cap: int,
    stall: float,
    deadline: float | None,
) -> Streamed:
    """POST ``body`` to ``url``; the answer once its head is in (call :meth:`Streamed.release`
    when done). Failures raise as :meth:`FastPool.post`'s do."""
    key, request = pool.encode(url, headers, body)
    slots = pool.slots
    await slots.acquire()
    try:
        conn, status, got, keep = await pool.send(key, request)
    except BaseException:
        slots.release()
        raise
    return Streamed(pool, key, conn, status, got, keep, cap, stall, deadline)
