"""``GET /api/v1/config`` on a real server, and runtimes that load and follow it, on 3 engines.

Keys and secret values are generated per test; ordering is explicit (the server's watcher
reports a pending long-poll before the write happens); bounds are safety nets, not speeds.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from typing import Any

import httpx
import pytest

from builders import gateway_doc, provider_doc, write_manifests
from gateways import Setup
from gwconfig.db.session import open_database
from gwconfig.errors import EncryptionKeyError
from gwconfig.reconcile import commands
from gwconfig.reconcile.plan import PlanOptions
from gwconfig.runtime import ConfigLoader, LLMGatewayClient, ProviderFactory
from gwconfig.runtime.errors import ConfigLoadError
from gwconfig.secrets.keys import generate_key
from gwconfig.seed.service import ProviderService
from serve_helpers import ServedApp

#: a safety net against a hung server, never an assumption about speed
BOUND = 60.0


def yes(_plan: object) -> bool:
    """Approve every plan."""
    return True


def wait_until_polling(server: ServedApp) -> None:
    """Return once the server holds a long-poll (bounded: a safety net)."""
    watcher = server.app.state.config_watcher
    deadline = time.monotonic() + BOUND
    while watcher.waiting == 0:
        assert time.monotonic() < deadline, "the long-poll never reached the server"
        time.sleep(0.005)


def test_etag_304_and_secrets_only_encrypted(setup: Setup) -> None:
    first = setup.get()
    assert first.status_code == 200, first.text
    etag = first.headers["etag"]
    doc = first.json()
    assert doc["format"] == "gwconfig-runtime-config" and doc["revision"] == 1
    assert f'"{doc["generation"]}"' == etag
    assert first.headers["x-gwconfig-revision"] == "1"
    assert setup.api_key not in first.text and setup.api_key not in str(first.headers)
    assert [s[0] for s in doc["secrets"]] == [
        "openai/key:default@default",
        "openai/param:project@default",
    ]
    again = setup.get(headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag and again.content == b""
    # an unknown or malformed ETag gets the document
    assert setup.get(headers={"If-None-Match": '"other.1"'}).status_code == 200
    assert setup.get(headers={"If-None-Match": "garbage"}).status_code == 200
    # gzip when asked (httpx asks by default and decodes)
    assert setup.get().headers.get("content-encoding") == "gzip"
    with setup.server.client() as client:
        ready = client.get("/readyz").json()
    assert ready["revision"] == 1 and f'"{ready["generation"]}"' == etag


def test_scopes(setup: Setup) -> None:
    assert setup.get(setup.tokens["admin"]).status_code == 200
    for scope in ("read", "invoke"):
        response = setup.get(setup.tokens[scope])
        assert response.status_code == 403, scope
        assert response.headers["content-type"].startswith("application/problem+json")
    with setup.server.client() as client:
        missing = client.get("/api/v1/config")
    assert missing.status_code == 401 and "bearer" in missing.headers["www-authenticate"].lower()
    assert setup.get("gwc_" + "x" * 43).status_code == 401
    assert setup.get(params={"wait": "61"}).status_code == 422
    for bad in ("-1", "nan", "inf", "soon"):
        assert setup.get(params={"wait": bad}).status_code == 422, bad


def test_long_poll_answers_when_an_apply_commits(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    etag = setup.get().headers["etag"]
    # nothing changes: a short wait ends with 304
    assert setup.get(headers={"If-None-Match": etag}, params={"wait": "0.05"}).status_code == 304
    answers: list[httpx.Response] = []
    poll = threading.Thread(
        target=lambda: answers.append(
            setup.get(headers={"If-None-Match": etag}, params={"wait": str(BOUND)})
        )
    )
    poll.start()
    wait_until_polling(setup.server)
    setup.apply(monkeypatch, "sk-next-" + secrets.token_hex(8))
    poll.join(BOUND * 2)
    assert not poll.is_alive(), "the long-poll did not return"
    (answer,) = answers
    assert answer.status_code == 200 and answer.headers["etag"] != etag
    assert answer.json()["revision"] == 2


def test_http_loader_gives_the_database_config(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = setup.server.base_url + "/api/v1"
    from_db = ConfigLoader(setup.url).load_config_as_object()
    loader = ConfigLoader(base, token=setup.tokens["runtime"])
    from_http = loader.load_config_as_object()
    assert from_http == from_db
    assert from_http.providers["openai"].api_key(0).value == setup.api_key
    assert from_http.content_hash == from_db.content_hash
    assert loader.load_config() == ConfigLoader(setup.url).load_config()
    assert from_http.version == setup.get().headers["etag"]
    assert loader.current_version() == from_http.version  # 304: unchanged
    assert loader._fetched is None  # nothing new was sent
    # the token from the environment; without one, or with the wrong scope: a clear error
    monkeypatch.setenv("GWCONFIG_API_TOKEN", setup.tokens["admin"])
    assert ConfigLoader(base).load_config_as_object() == from_db
    monkeypatch.delenv("GWCONFIG_API_TOKEN")
    with pytest.raises(ConfigLoadError, match="no API token"):
        ConfigLoader(base)
    with pytest.raises(ConfigLoadError, match="403") as info:
        ConfigLoader(base, token=setup.tokens["read"]).load_config_as_object()
    assert setup.tokens["read"] not in str(info.value)
    # a document over the limit is refused while it is read
    from gwconfig.runtime.config import remote

    with monkeypatch.context() as patched, pytest.raises(ConfigLoadError, match="1000 bytes"):
        patched.setattr(remote, "MAX_DOCUMENT_BYTES", 1000)
        ConfigLoader(base, token=setup.tokens["runtime"]).load_config_as_object()
    # the runtime needs the key that opens the ciphertexts
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", generate_key())
    with pytest.raises(EncryptionKeyError):
        ConfigLoader(base, token=setup.tokens["runtime"]).load_config_as_object()


async def _follow(client: LLMGatewayClient, old: Any) -> Any:
    """The client's configuration version once it differs from ``old`` (bounded)."""
    deadline = time.monotonic() + BOUND
    while client.config.version == old:
        assert time.monotonic() < deadline, "the client never reloaded"
        await asyncio.sleep(0.01)
    return client.config.version


@pytest.mark.parametrize("source", ["http", "database"])
def test_auto_reload_follows_writes(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, source: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    base = setup.server.base_url + "/api/v1"
    loader = (
        ConfigLoader(base, token=setup.tokens["runtime"])
        if source == "http"
        else ConfigLoader(setup.url)
    )
    new_key = "sk-next-" + secrets.token_hex(8)

    async def main() -> tuple[str | None, str | None]:
        async with LLMGatewayClient(loader.load_config_as_object(), loader=loader) as client:
            first = client.config.version
            client.start_auto_reload(interval_seconds=BOUND)
            if source == "http":
                await asyncio.to_thread(wait_until_polling, setup.server)
            await asyncio.to_thread(setup.apply, monkeypatch, new_key)
            await _follow(client, first)
            after_apply = client.config.providers["openai"].api_key(0).value

            def service_write() -> None:
                db = open_database(setup.url)
                try:
                    with db.session() as session:
                        ProviderService(session).update_provider("openai", {"display_name": "X"})
                finally:
                    db.dispose()

            second = client.config.version
            await asyncio.to_thread(service_write)
            await _follow(client, second)
            return after_apply, client.config.providers["openai"].display_name

    after_apply, description = asyncio.run(main())
    assert after_apply == new_key and description == "X"
    assert new_key not in caplog.text and setup.api_key not in caplog.text


def test_a_long_poll_ends_when_its_client_leaves(setup: Setup) -> None:
    import socket
    from urllib.parse import urlsplit

    etag = setup.get().headers["etag"]
    where = urlsplit(setup.server.base_url)
    request = (
        f"GET /api/v1/config?wait={BOUND:g} HTTP/1.1\r\nHost: {where.netloc}\r\n"
        f"Authorization: Bearer {setup.tokens['runtime']}\r\nIf-None-Match: {etag}\r\n\r\n"
    )
    with socket.create_connection((where.hostname, where.port), timeout=BOUND) as sock:
        sock.sendall(request.encode())
        wait_until_polling(setup.server)
    watcher = setup.server.app.state.config_watcher
    deadline = time.monotonic() + BOUND
    while watcher.waiting:  # the server notices the disconnect and stops waiting
        assert time.monotonic() < deadline, "the long-poll outlived its client"
        time.sleep(0.005)


class NoAnthropic(ProviderFactory):
    """A factory that has no implementation of ``anthropic`` (a refused configuration)."""

    def provider_class(self, provider_type: str) -> Any:
        if provider_type == "anthropic":
            raise ConfigLoadError("no provider implementation for provider_type 'anthropic'")
        return super().provider_class(provider_type)


def test_http_runtime_refuses_a_bad_revision_once_and_takes_the_next(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    loader = ConfigLoader(setup.server.base_url + "/api/v1", token=setup.tokens["runtime"])
    assert loader.remote is not None
    fetches = 0
    afetch = loader.remote.afetch

    async def counting(*args: Any) -> Any:
        nonlocal fetches
        fetches += 1
        return await afetch(*args)

    monkeypatch.setattr(loader.remote, "afetch", counting)
    bad = provider_doc("claude", provider_type="anthropic")

    async def main() -> tuple[str | None, str]:
        config = loader.load_config_as_object()
        async with LLMGatewayClient(config, NoAnthropic(), loader=loader) as client:
            client.start_auto_reload(interval_seconds=BOUND)
            await asyncio.to_thread(wait_until_polling, setup.server)
            write_manifests(setup.root, provider_doc(), bad, gateway_doc())
            await asyncio.to_thread(setup.apply, monkeypatch, setup.api_key)
            deadline = time.monotonic() + BOUND
            while client.last_reload_error is None:
                assert time.monotonic() < deadline, "the bad revision never arrived"
                await asyncio.sleep(0.01)
            refused = client.last_reload_error
            assert client.config is config  # the last good one keeps serving
            await asyncio.to_thread(wait_until_polling, setup.server)  # waits, not spinning
            write_manifests(setup.root, provider_doc(display_name="Good"), gateway_doc())
            await asyncio.to_thread(
                commands.apply, str(setup.root), setup.url,
                PlanOptions(prune=True), review=yes,
            )  # fmt: skip
            await _follow(client, config.version)
            return refused, client.config.providers["openai"].display_name

    refused, name = asyncio.run(main())
    assert refused is not None and "anthropic" in refused and name == "Good"
    assert fetches <= 4  # first poll, the bad revision, the good one (and one spare)
