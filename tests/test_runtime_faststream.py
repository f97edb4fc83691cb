"""The fast client's streamed answers against a loopback server writing every byte itself:
chunked, ``Content-Length`` and close-delimited bodies, the byte cap, the stall and deadline
watch, an upstream cut mid-stream, connections kept only when read whole, a proxy keeping
httpx, and a stream left before its first chunk closing the upstream connection."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gwconfig.runtime import ConfigLoader, LLMConfig, LLMGatewayClient, LLMRequest
from gwconfig.runtime.errors import ProviderUnavailableError
from gwconfig.runtime.providers.fastpost import FastPool, TooLarge
from gwconfig.runtime.providers.faststream import Stalled, open_stream
from raw_upstream import RawUpstream, Request, sse_answer
from runtime_servers import FAST, provider_doc, write_compiled

URL = "/v1/chat/completions"


def run(answer: Callable[[Request, asyncio.StreamWriter], Awaitable[None]], body: Any) -> Any:
    """``body(pool, url, upstream)`` against a :class:`RawUpstream` answering with ``answer``."""

    async def main() -> Any:
        upstream = await RawUpstream(answer).start()
        pool = FastPool(4, 5.0)
        try:
            return await body(pool, upstream.base_url + URL, upstream)
        finally:
            await pool.aclose()
            await upstream.stop()

    return asyncio.run(main())


def writes(*parts: bytes) -> Callable[[Request, asyncio.StreamWriter], Awaitable[None]]:
    """An answer written in ``parts`` (each flushed on its own)."""

    async def answer(_request: Request, writer: asyncio.StreamWriter) -> None:
        for part in parts:
            writer.write(part)
            await writer.drain()

    return answer


async def read_all(pool: FastPool, url: str, cap: int = 10_000, **kw: Any) -> tuple[bytes, int]:
    resp = await open_stream(pool, url, {}, b"{}", cap, kw.get("stall", 30.0), kw.get("deadline"))
    try:
        pieces = [piece async for piece in resp.aiter_bytes()]
        return b"".join(pieces), resp.status
    finally:
        resp.release()


EVENTS = [b'data: {"n": 1}\n\n', b'data: {"n": 2}\n\n', b"data: [DONE]\n\n"]


@pytest.mark.parametrize("chunked", [True, False])
def test_framed_bodies_are_read_whole_and_the_connection_kept(chunked: bool) -> None:
    async def twice(pool: FastPool, url: str, upstream: RawUpstream) -> Any:
        return [await read_all(pool, url) for _ in range(2)], upstream.connections

    answer = sse_answer(EVENTS, chunked=chunked)
    reads, connections = run(writes(answer[:60], answer[60:]), twice)
    assert reads == [(b"".join(EVENTS), 200)] * 2
    assert connections == 1


def test_a_body_ending_with_the_connection_is_read_and_not_kept() -> None:
    async def twice(pool: FastPool, url: str, upstream: RawUpstream) -> Any:
        return [await read_all(pool, url) for _ in range(2)], upstream.connections

    async def answer(_request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        writer.write(b"".join(EVENTS))
        await writer.drain()
        writer.close()

    reads, connections = run(answer, twice)
    assert reads == [(b"".join(EVENTS), 200)] * 2
    assert connections == 2


@pytest.mark.parametrize("chunked", [True, False])
def test_a_body_past_the_cap_is_refused(chunked: bool) -> None:
    async def capped(pool: FastPool, url: str, upstream: RawUpstream) -> Any:
        with pytest.raises(TooLarge) as refused:
            await read_all(pool, url, cap=20)
        return refused.value.why

    why = run(writes(sse_answer(EVENTS, chunked=chunked)), capped)
    length = len(b"".join(EVENTS))
    assert why == ("the stream goes on past it" if chunked else f"Content-Length {length}")


@pytest.mark.parametrize("kind", ["stall", "deadline"])
def test_a_stream_that_stops_sending_is_dropped_at_the_stall_bound_or_the_deadline(
    kind: str,
) -> None:
    async def stalled(pool: FastPool, url: str, upstream: RawUpstream) -> Any:
        limits = {"stall": 0.05} if kind == "stall" else {"deadline": time.monotonic() + 0.05}
        with pytest.raises(Stalled) as stopped:
            await read_all(pool, url, **limits)
        return stopped.value.why, await asyncio.to_thread(upstream.closed.wait, 30)

    never = asyncio.Event()  # the rest of the answer never comes

    async def answer(_request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await never.wait()

    why, closed = run(answer, stalled)
    assert why == kind
    assert closed  # the connection was dropped, not left open


def test_an_upstream_cut_mid_stream_is_an_error_and_the_connection_not_kept() -> None:
    async def cut(pool: FastPool, url: str, upstream: RawUpstream) -> Any:
        with pytest.raises(asyncio.IncompleteReadError):
            await read_all(pool, url)
        return await read_all(pool, url), upstream.connections

    count = [0]

    async def answer(_request: Request, writer: asyncio.StreamWriter) -> None:
        count[0] += 1
        if count[0] == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + EVENTS[0])
            await writer.drain()
            writer.close()
            return
        writer.write(sse_answer(EVENTS))

    (second, connections) = run(answer, cut)
    assert second == (b"".join(EVENTS), 200)
    assert connections == 2


def test_a_stream_left_early_closes_its_connection_and_one_finished_keeps_it() -> None:
    async def partly(pool: FastPool, url: str, upstream: RawUpstream) -> Any:
        seen = []
        for finish in (False, True, False):
            resp = await open_stream(pool, url, {}, b"{}", 10_000, 30.0, None)
            pieces = resp.aiter_bytes()
            seen.append(await pieces.__anext__())  # the first event only
            if finish:
                resp.finished()  # the caller read the answer's end: the rest is framing
            await pieces.aclose()  # type: ignore[attr-defined]
            resp.release()
            await pool.background()
        return seen, upstream.connections

    async def answer(_request: Request, writer: asyncio.StreamWriter) -> None:
        # the event first; the rest of the body (the chunked encoding's end) on its own
        writer.write(sse_answer([EVENTS[0]])[: -len(b"0\r\n\r\n")])
        await writer.drain()
        writer.write(b"0\r\n\r\n")

    seen, connections = run(answer, partly)
    assert seen == [EVENTS[0]] * 3
    # left early: a new connection; finished: the same one again for the third
    assert connections == 2


def config(tmp_path: Path, base_url: str) -> Any:
    doc = provider_doc(
        "oa",
        "openai",
        ["gpt"],
        api_keys=[{"value": {"env": "RT_TEST_KEY"}}],
        request_settings={**FAST, "max_retries": 0, "timeout_seconds": 30},
        connection={"api_base": base_url + "/v1"},
    )
    return ConfigLoader(write_compiled(tmp_path / "c.json", [doc])).load_config_as_object()


CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'
STOP = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'


@pytest.mark.parametrize("proxy", [False, True])
def test_streams_go_through_the_fast_client_unless_a_proxy_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, proxy: bool
) -> None:
    monkeypatch.setenv("RT_TEST_KEY", "sk-test-key")
    if proxy:  # named, and bypassed for loopback: httpx goes direct, the fast client not at all
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")

    async def main() -> Any:
        upstream = await RawUpstream(writes(sse_answer([CHUNK, STOP, EVENTS[2]]))).start()
        try:
            async with LLMGatewayClient(config(tmp_path, upstream.base_url)) as client:
                stream = client.generate_stream(LLMRequest("hello", LLMConfig("oa/gpt")))
                text = "".join([piece async for piece in stream])
                return text, [r.headers.get("user-agent", "") for r in upstream.requests]
        finally:
            await upstream.stop()

    text, agents = asyncio.run(main())
    assert text == "hi"
    # httpx says who it is; the fast client sends only Host, the caller's headers, the length
    assert [a.startswith("python-httpx/") for a in agents] == [proxy]


def test_a_stream_left_before_its_first_chunk_closes_the_upstream_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RT_TEST_KEY", "sk-test-key")
    never = asyncio.Event()

    async def answer(_request: Request, writer: asyncio.StreamWriter) -> None:
        await never.wait()  # nothing is answered

    async def main() -> Any:
        upstream = await RawUpstream(answer).start()
        try:
            async with LLMGatewayClient(config(tmp_path, upstream.base_url)) as client:
                stream = client.generate_stream(LLMRequest("hello", LLMConfig("oa/gpt")))
                first = asyncio.ensure_future(stream.events().__anext__())
                assert await asyncio.to_thread(upstream.arrived.wait, 30)
                first.cancel()  # the caller leaves before any chunk
                with pytest.raises(asyncio.CancelledError):
                    await first
                await stream.aclose()
                return await asyncio.to_thread(upstream.closed.wait, 30)
        finally:
            await upstream.stop()

    assert asyncio.run(main()), "the upstream connection was not closed"


def test_errors_of_the_fast_stream_are_provider_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RT_TEST_KEY", "sk-test-key")
    answers = {
        "cut": b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 500\r\n\r\n"
        + CHUNK,
        "json": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    }
    got: dict[str, Exception] = {}

    for name, raw in answers.items():

        async def answer(_request: Request, writer: asyncio.StreamWriter, raw: bytes = raw) -> None:
            writer.write(raw)
            await writer.drain()
            writer.close()

        async def main() -> Exception:
            upstream = await RawUpstream(answer).start()
            try:
                async with LLMGatewayClient(config(tmp_path, upstream.base_url)) as client:
                    stream = client.generate_stream(LLMRequest("hello", LLMConfig("oa/gpt")))
                    try:
                        _ = [piece async for piece in stream]
                    except Exception as exc:
                        return exc
                    raise AssertionError("the stream did not fail")
            finally:
                await upstream.stop()

        got[name] = asyncio.run(main())
    assert isinstance(got["cut"], ProviderUnavailableError)
    assert "stream broken" in str(got["cut"])
    assert "instead of server-sent events" in str(got["json"])


def test_a_gzip_stream_is_decoded_as_it_comes() -> None:
    packer = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    parts = [packer.compress(e) + packer.flush(zlib.Z_SYNC_FLUSH) for e in EVENTS]
    parts[-1] += packer.flush()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"

    async def read(pool: FastPool, url: str, upstream: RawUpstream) -> Any:
        return await read_all(pool, url)

    assert run(writes(head + chunks), read) == (b"".join(EVENTS), 200)
