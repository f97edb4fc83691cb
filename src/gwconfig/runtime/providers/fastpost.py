"""A lean HTTP/1.1 keep-alive client for the one call on the hot path: a JSON POST.

``httpx`` costs about a millisecond of CPU per request and gets slower as its pool grows
(every request checks every pooled connection with a system call); a gateway in front of a fast
upstream spends most of its time there. :class:`FastPool` does only what ``post_json`` needs:
keep-alive connections on asyncio streams, one POST, a status, headers and a body read within a
byte cap (``Content-Length``, chunked, or up to the end of the connection; gzip/deflate decoded).
Streamed answers are read by :mod:`~gwconfig.runtime.providers.faststream` over the same
connections; proxies and anything unusual stay with ``httpx`` (see :meth:`HTTPProvider.post_json`).

Where it stands against ``httpx.AsyncClient()`` (``trust_env=True``) for the same POST:

- TLS: certificates and host names are always verified; the trusted roots are picked as httpx
  picks them: ``SSL_CERT_FILE``, else ``SSL_CERT_DIR``, else certifi's bundle (the system's when
  certifi is missing). An ``https`` URL never falls back to plain text.
- Proxies: when the environment names any proxy (``*_proxy`` variables as
  :func:`urllib.request.getproxies` reads them, which is what httpx reads) the provider keeps
  httpx for every call, which also applies ``NO_PROXY`` exactly as httpx does.
- Redirects: neither follows them (httpx does not by default); a 3xx is returned as is.
- Headers: only ``Host``, the caller's headers and ``Content-Length`` are sent; httpx adds
  ``Accept: */*``, ``Accept-Encoding``, ``Connection: keep-alive`` and a ``User-Agent``
  (upstreams then answer uncompressed, or with gzip/deflate when they insist).
- HTTP/1.1 only, as httpx without ``http2=True``; no ``.netrc`` (httpx 0.28 ignores it too).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import urllib.request
import zlib
from collections.abc import Mapping
from urllib.parse import urlsplit

#: the most bytes of a response's status line and headers
MAX_HEAD_BYTES = 64 * 1024
#: the proxy schemes httpx takes from the environment (``<scheme>_proxy``, any case)
PROXY_SCHEMES = ("http", "https", "all")


class TooLarge(Exception):
    """The body goes past the cap (``why`` says how it was noticed)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class BadResponse(Exception):
    """The upstream's answer is not HTTP/1.x as this client reads it."""


class _Stale(Exception):
    """A kept-alive connection was closed by the upstream before answering."""


def usable(url: str) -> bool:
    """True when a POST to ``url`` can go through :class:`FastPool` (http(s), no proxy set,
    ``GWCONFIG_HTTP_CLIENT`` not ``httpx``)."""
    if os.environ.get("GWCONFIG_HTTP_CLIENT", "").lower() == "httpx":
        return False
    proxies = urllib.request.getproxies()
    if any(proxies.get(scheme) for scheme in PROXY_SCHEMES):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.username


def _ssl_context() -> ssl.SSLContext:
    """A verifying client context (host names checked) trusting the roots httpx would trust."""
    cafile = os.environ.get("SSL_CERT_FILE")
    if cafile:
        return ssl.create_default_context(cafile=cafile)
    capath = os.environ.get("SSL_CERT_DIR")
    if capath:
        return ssl.create_default_context(capath=capath)
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return ssl.create_default_context()


class Conn:
    """One connection to an upstream."""

    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def fresh(self) -> bool:
        """False when the upstream closed it (or it is being closed)."""
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        """Close it (what is buffered is still sent)."""
        self.writer.close()

    def abort(self) -> None:
        """Drop it now: a read waiting on it sees the end of the stream."""
        self.writer.transport.abort()


class FastPool:
    """Keep-alive connections to the hosts of one provider (at most ``limit`` in use)."""

    def __init__(self, limit: int, connect_timeout: float) -> None:
        self._limit = max(limit, 1)
        self._connect_timeout = connect_timeout
        self._idle: dict[tuple[str, str, int], list[Conn]] = {}
        self._sem: asyncio.Semaphore | None = None
        self._ssl: ssl.SSLContext | None = None
        self._targets: dict[str, tuple[tuple[str, str, int], bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _target(self, url: str) -> tuple[tuple[str, str, int], bytes]:
        hit = self._targets.get(url)
        if hit is None:
            parts = urlsplit(url)
            scheme, host = parts.scheme, parts.hostname or ""
            port = parts.port or (443 if scheme == "https" else 80)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            default = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
            netloc = host if default else f"{host}:{port}"
            if ":" in host and not default:
                netloc = f"[{host}]:{port}"
            head = f"POST {path} HTTP/1.1\r\nHost: {netloc}\r\n".encode("ascii")
            hit = ((scheme, host, port), head)
            if len(self._targets) < 1024:
                self._targets[url] = hit
        return hit

    async def _connect(self, key: tuple[str, str, int]) -> Conn:
        scheme, host, port = key
        tls = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = _ssl_context()
            tls = self._ssl
        opening = asyncio.open_connection(
            host, port, ssl=tls, server_hostname=host if tls else None, limit=MAX_HEAD_BYTES
        )
        reader, writer = await asyncio.wait_for(opening, self._connect_timeout)
        return Conn(reader, writer)

    def encode(
        self, url: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[tuple[str, str, int], bytes]:
        """The host key and the bytes of a POST of ``body`` to ``url``."""
        key, head = self._target(url)
        lines = [head]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise BadResponse(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        lines.append(f"Content-Length: {len(body)}\r\n\r\n".encode("ascii"))
        lines.append(body)
        return key, b"".join(lines)

    @property
    def slots(self) -> asyncio.Semaphore:
        """The semaphore bounding the connections in use."""
        if self._sem is None:
            self._sem = asyncio.Semaphore(self._limit)
        return self._sem

    async def send(
        self, key: tuple[str, str, int], request: bytes
    ) -> tuple[Conn, int, dict[str, str], bool]:
        """Send ``request`` on an idle connection (the next one when it was closed while
        idle) or a new one; the connection, status, headers and whether it may be kept."""
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.fresh():
                try:
                    return (conn, *await _head_of(conn, request))
                except _Stale:
                    conn.close()
                    continue  # closed while idle: nothing was answered, try another
                except BaseException:
                    conn.close()
                    raise
            conn.close()
        conn = await self._connect(key)
        try:
            return (conn, *await _head_of(conn, request))
        except _Stale:
            conn.close()
            raise ConnectionResetError("the upstream closed the connection") from None
        except BaseException:
            conn.close()
            raise

    def track(self, task: asyncio.Task[None]) -> None:
        """Hold on to a background read (a stream's end) until it is done."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def background(self) -> None:
        """Wait for the background reads (a stream's last bytes) under way."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def keep(self, key: tuple[str, str, int], conn: Conn) -> None:
        """Put ``conn`` (its answer read whole) back among the idle connections."""
        self._idle.setdefault(key, []).append(conn)

    async def post(
        self, url: str, headers: Mapping[str, str], body: bytes, cap: int, error_cap: int
    ) -> tuple[int, dict[str, str], bytes]:
        """POST ``body`` to ``url``; the status, headers (lower-case names) and body.

        A success body over ``cap`` raises :class:`TooLarge`; an error body (status >= 400) is
        cut at ``error_cap``. Network failures raise :class:`OSError` (or
        :class:`asyncio.IncompleteReadError`); an unreadable answer :class:`BadResponse`.
        """
        key, request = self.encode(url, headers, body)
        async with self.slots:
            conn, status, got, keep = await self.send(key, request)
            done = False
            try:
                content, complete = await _read_body(
                    conn.reader, got, cap if status < 400 else error_cap, truncate=status >= 400
                )
                content = _decode(got.get("content-encoding", ""), content, cap)
                if keep and complete:
                    self.keep(key, conn)
                    done = True
                return status, got, content
            finally:
                if not done:
                    conn.close()

    async def aclose(self) -> None:
        """Close every idle connection (and stop the background reads)."""
        for task in list(self._tasks):
            task.cancel()
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()


async def _head_of(conn: Conn, request: bytes) -> tuple[int, dict[str, str], bool]:
    conn.writer.write(request)
    await conn.writer.drain()
    return await _read_head(conn.reader)


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bool]:
    first = True
    while True:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if first and not exc.partial:
                raise _Stale from None
            raise
        except asyncio.LimitOverrunError:
            raise BadResponse(f"response headers over {MAX_HEAD_BYTES} bytes") from None
        first = False
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise BadResponse("the answer is not HTTP/1.x")
        status = int(parts[1])
        if 100 <= status < 200:
            continue  # an interim answer: the real one follows
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                value = value.strip()
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
        keep = parts[0] == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        return status, headers, keep


async def _read_body(
    reader: asyncio.StreamReader, headers: Mapping[str, str], cap: int, *, truncate: bool
) -> tuple[bytes, bool]:
    """The body (or its first ``cap`` bytes when ``truncate``) and whether it was read whole."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        total = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadResponse("a chunk size is not a number") from None
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(parts), True
            if total + size > cap:
                if not truncate:
                    raise TooLarge("the body goes on past it")
                parts.append(await reader.readexactly(cap - total))
                return b"".join(parts), False
            parts.append(await reader.readexactly(size))
            total += size
            await reader.readexactly(2)
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadResponse("Content-Length is not a number")
        n = int(declared)
        if n > cap:
            if not truncate:
                raise TooLarge(f"Content-Length {declared}")
            return await reader.readexactly(cap), False
        return await reader.readexactly(n), True
    data = await reader.read(cap + 1)  # no length: the body ends with the connection
    chunks = [data]
    total = len(data)
    while data and total <= cap:
        data = await reader.read(cap + 1 - total)
        chunks.append(data)
        total += len(data)
    body = b"".join(chunks)
    if len(body) > cap:
        if not truncate:
            raise TooLarge("the body goes on past it")
        body = body[:cap]
    return body, False


def _decode(encoding: str, content: bytes, cap: int) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return content
    if encoding not in ("gzip", "deflate"):
        raise BadResponse(f"unsupported Content-Encoding {encoding!r}")
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    try:
        out = zlib.decompressobj(wbits).decompress(content, cap + 1)
    except zlib.error:
        raise BadResponse(f"the {encoding} body does not decode") from None
    if len(out) > cap:
        raise TooLarge("the decoded body goes on past it")
    return out
