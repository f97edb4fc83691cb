"""The runtime configuration over HTTP: ``ConfigLoader("https://host/api/v1", token=...)``.

The gateway API (``gwconfig serve``) answers ``GET /api/v1/config`` with the document of
:mod:`gwconfig.server.config.payload` and its ``ETag``; ``If-None-Match`` gives 304, and
``?wait=SECONDS`` (at most :data:`MAX_WAIT`) holds the request until a new generation is
committed. The runtime needs no database credentials: only an API token of scope ``runtime``
(``token=`` or ``GWCONFIG_API_TOKEN``) and ``GWCONFIG_ENCRYPTION_KEY``, which opens the stored
ciphertexts exactly as when it reads the database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import orjson

from gwconfig.entities import SecretScope
from gwconfig.runtime.errors import ConfigLoadError
from gwconfig.settings import mask_url

FORMAT = "gwconfig-runtime-config"
FORMAT_VERSION = 1
#: the variable that holds the API token when ``token=`` is not given
TOKEN_ENV = "GWCONFIG_API_TOKEN"
#: the longest long-poll the server accepts (seconds)
MAX_WAIT = 60.0
#: the largest document accepted (bytes, after decompression)
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024


def is_http_source(source: Any) -> bool:
    """True for an ``http://`` or ``https://`` URL (the gateway API's base URL)."""
    return isinstance(source, str) and source.lower().startswith(("http://", "https://"))


@dataclass(frozen=True)
class Fetched:
    """A configuration document and its ETag."""

    etag: str
    doc: dict[str, Any]


class RemoteSource:
    """``GET {base_url}/config`` with a Bearer token, conditional and long-polling (httpx)."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._url = f"{self.base_url}/config"
        #: printable: a password or token in the URL itself is masked
        self.url = mask_url(self._url)
        token = token or os.environ.get(TOKEN_ENV, "").strip()
        if not token:
            raise ConfigLoadError(
                f"no API token for {self.url}",
                hint=f"pass token=... or set {TOKEN_ENV} (a token of scope 'runtime')",
            )
        self._headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}
        self.timeout = timeout
        self._async: Any = None

    def __repr__(self) -> str:
        return f"RemoteSource({self.url!r})"  # never the token

    def _request(self, etag: str | None, wait: float) -> tuple[dict[str, str], dict[str, str]]:
        headers = dict(self._headers)
        if etag:
            headers["If-None-Match"] = etag
        params = {"wait": f"{min(max(wait, 0.0), MAX_WAIT):g}"} if wait > 0 else {}
        return headers, params

    def _timeout(self, wait: float) -> Any:
        import httpx

        return httpx.Timeout(self.timeout, read=self.timeout + min(max(wait, 0.0), MAX_WAIT))

    def fetch(self, etag: str | None = None, wait: float = 0.0) -> Fetched | None:
        """The document, or None when the server says it is still ``etag`` (304)."""
        import httpx

        headers, params = self._request(etag, wait)
        try:
            with (
                httpx.Client(timeout=self._timeout(wait)) as client,
                client.stream("GET", self._url, headers=headers, params=params) as response,
            ):
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    self._check_size(len(body))
        except httpx.HTTPError as exc:
            raise ConfigLoadError(f"cannot reach {self.url}: {type(exc).__name__}") from None
        return self._answer(response, bytes(body))

    async def afetch(self, etag: str | None = None, wait: float = 0.0) -> Fetched | None:
        """:meth:`fetch` without blocking the event loop (one pooled async client)."""
        import httpx

        if self._async is None:
            self._async = httpx.AsyncClient()
        headers, params = self._request(etag, wait)
        request = self._async.build_request(
            "GET", self._url, headers=headers, params=params, timeout=self._timeout(wait)
        )
        try:
            response = await self._async.send(request, stream=True)
            try:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    self._check_size(len(body))
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise ConfigLoadError(f"cannot reach {self.url}: {type(exc).__name__}") from None
        return self._answer(response, bytes(body))

    async def aclose(self) -> None:
        """Close the async client."""
        client, self._async = self._async, None
        if client is not None:
            await client.aclose()

    def _check_size(self, size: int) -> None:
        if size > MAX_DOCUMENT_BYTES:
            raise ConfigLoadError(f"{self.url} sent more than {MAX_DOCUMENT_BYTES} bytes")

    def _answer(self, response: Any, body: bytes) -> Fetched | None:
        if response.status_code == 304:
            return None
        if response.status_code != 200:
            raise ConfigLoadError(
                f"{self.url} answered {response.status_code}: {_problem_title(response, body)}",
                hint="the token needs scope 'runtime'" if response.status_code == 403 else None,
            )
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ConfigLoadError(f"{self.url} did not send JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ConfigLoadError(f"{self.url} did not send a gwconfig runtime configuration")
        if doc.get("format_version") != FORMAT_VERSION:
            raise ConfigLoadError(
                f"{self.url} sent format_version {doc.get('format_version')!r}; this gwconfig "
                f"reads format_version {FORMAT_VERSION}"
            )
        return Fetched(str(response.headers.get("etag") or ""), doc)


def _problem_title(response: Any, body: bytes) -> str:
    """The problem's title (RFC 9457), else the reason phrase; never the whole body."""
    try:
        title = orjson.loads(body).get("title")
    except (orjson.JSONDecodeError, AttributeError):
        title = None
    return str(title)[:200] if title else str(response.reason_phrase)


def tables_of(doc: dict[str, Any]) -> tuple[Any, ...]:
    """``(data, secrets, key_ids, model rows)`` of a document, as the database loader has them."""
    secrets: dict[SecretScope, str] = {}
    key_ids: dict[SecretScope, str | None] = {}
    for sid, token, kid in doc.get("secrets") or ():
        scope = SecretScope.parse(sid)
        secrets[scope] = token
        key_ids[scope] = kid
    # the rows stay JSON arrays: read by index like the database's tuples, never changed
    return doc["config"], secrets, key_ids, doc["models"]


def origins_of(doc: dict[str, Any]) -> dict[SecretScope, str | None]:
    """The origin each secret of a document is bound to (``"origins"``: scope id -> origin;
    absent from a server older than revision 0008's, and then every secret is unbound)."""
    return {SecretScope.parse(sid): origin for sid, origin in (doc.get("origins") or {}).items()}
