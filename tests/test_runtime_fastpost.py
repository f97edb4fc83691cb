"""The lean keep-alive POST client of ``post_json`` against a raw loopback HTTP server whose
every answer the test writes byte for byte (keep-alive, closes, chunks, gzip, caps)."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gwconfig.runtime.providers.fastpost import BadResponse, FastPool, TooLarge, usable

Answer = Callable[[int], bytes]


async def serve(answer: Answer, close_after: bool = False) -> tuple[asyncio.Server, list[int]]:
    """A server answering the n-th request (over all connections) with ``answer(n)``;
    ``connections[0]`` counts the connections accepted."""
    connections = [0]
    count = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                count[0] += 1
                writer.write(answer(count[0]))
                await writer.drain()
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, connections


def run(answer: Answer, body: Callable[[FastPool, str], Awaitable[object]], **kw: bool) -> object:
    async def main() -> object:
        server, connections = await serve(answer, **kw)
        port = server.sockets[0].getsockname()[1]
        pool = FastPool(4, 5.0)
        try:
            result = await body(pool, f"http://127.0.0.1:{port}/v1/chat/completions")
            return result, connections[0]
        finally:
            await pool.aclose()
            server.close()
            await server.wait_closed()

    return asyncio.run(main())


def ok(content: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(content), extra, content)


def test_connections_are_kept_alive_and_reopened_when_closed() -> None:
    async def three(pool: FastPool, url: str) -> list[bytes]:
        return [(await pool.post(url, {}, b"{}", 1000, 100))[2] for _ in range(3)]

    (bodies, connections) = run(lambda n: ok(b'{"n": %d}' % n), three)  # type: ignore[misc]
    assert bodies == [b'{"n": 1}', b'{"n": 2}', b'{"n": 3}'] and connections == 1
    # the upstream closes after each answer without saying so: each call still succeeds
    (bodies, connections) = run(lambda n: ok(b"%d" % n), three, close_after=True)  # type: ignore[misc]
    assert bodies == [b"1", b"2", b"3"] and connections == 3


def test_chunked_gzip_and_unsized_bodies() -> None:
    async def one(pool: FastPool, url: str) -> tuple[int, dict[str, str], bytes]:
        return await pool.post(url, {"x-a": "1"}, b"{}", 1000, 100)

    packed = gzip.compress(b'{"hello": "world"}')
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"
    chunked += b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (5, packed[:5], len(packed) - 5, packed[5:])
    ((status, headers, body), _n) = run(lambda n: chunked, one)  # type: ignore[misc]
    assert status == 200 and body == b'{"hello": "world"}'
    assert headers["content-encoding"] == "gzip"
    unsized = b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 500
    ((status, _h, body), _n) = run(lambda n: unsized, one, close_after=True)  # type: ignore[misc]
    assert body == b"x" * 500


def test_caps_and_broken_answers() -> None:
    async def one(pool: FastPool, url: str) -> tuple[int, dict[str, str], bytes]:
        return await pool.post(url, {}, b"{}", 1000, 100)

    with pytest.raises(TooLarge, match="Content-Length 5000"):
        run(lambda n: ok(b"a" * 5000), one)
    big_chunks = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"200\r\n" + b"b" * 512
    big_chunks += b"\r\n" + b"200\r\n" + b"b" * 512 + b"\r\n0\r\n\r\n"
    with pytest.raises(TooLarge, match="goes on past it"):
        run(lambda n: big_chunks, one)
    error = b"HTTP/1.1 500 Oops\r\nContent-Length: 5000\r\n\r\n" + b"e" * 5000
    ((status, _h, body), _n) = run(lambda n: error, one)  # type: ignore[misc]
    assert status == 500 and body == b"e" * 100  # an error body is cut, not refused
    with pytest.raises(BadResponse, match="not HTTP"):
        run(lambda n: b"SMTP ready\r\n\r\n", one)

    async def injected(pool: FastPool, url: str) -> object:
        return await pool.post(url, {"x-bad": "a\r\nHost: evil"}, b"{}", 1000, 100)

    with pytest.raises(BadResponse, match="line break"):
        run(lambda n: ok(b"{}"), injected)


def test_usable_only_for_plain_http_without_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    monkeypatch.delenv("GWCONFIG_HTTP_CLIENT", raising=False)
    assert usable("https://api.openai.com/v1/chat/completions")
    assert not usable("unix:///tmp/sock")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert not usable("https://api.openai.com/v1/chat/completions")
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.setenv("Https_Proxy", "http://proxy:3128")  # any case, as httpx reads them
    assert not usable("https://api.openai.com/v1/chat/completions")
    monkeypatch.delenv("Https_Proxy")
    monkeypatch.setenv("GWCONFIG_HTTP_CLIENT", "httpx")
    assert not usable("http://127.0.0.1:1/v1")


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A fresh self-signed certificate for the DNS name ``name`` and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "upstream.pem", tmp_path / "upstream.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _tls_post(cert: Path, key: Path, url_host: str) -> tuple[object, int]:
    """POST through a FastPool to a loopback HTTPS upstream; (the answer or the error raised,
    how many requests the upstream read)."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    answered = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)
            answered[0] += 1
            writer.write(ok(b'{"tls": true}'))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        writer.close()

    async def main() -> object:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        pool = FastPool(4, 5.0)
        try:
            return (await pool.post(f"https://{url_host}:{port}/v1", {}, b"{}", 1000, 100))[2]
        except OSError as exc:
            return exc
        finally:
            await pool.aclose()
            server.close()
            await server.wait_closed()

    return asyncio.run(main()), answered[0]


def test_tls_trusts_ssl_cert_file_and_dir_as_httpx_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _self_signed(tmp_path, "localhost")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    # not trusted by default: verification stays on, and nothing is sent in plain text instead
    refused, answered = _tls_post(cert, key, "localhost")
    assert isinstance(refused, ssl.SSLCertVerificationError) and answered == 0
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    assert _tls_post(cert, key, "localhost") == (b'{"tls": true}', 1)
    # the host name is checked too: the certificate names localhost, not 127.0.0.1
    mismatch, answered = _tls_post(cert, key, "127.0.0.1")
    assert isinstance(mismatch, ssl.SSLCertVerificationError) and answered == 0
    assert "IP address mismatch" in str(mismatch)
    # SSL_CERT_DIR (an OpenSSL hashed directory) when SSL_CERT_FILE is not set
    monkeypatch.delenv("SSL_CERT_FILE")
    certs = tmp_path / "certs"
    certs.mkdir()
    subject_hash = _openssl_subject_hash(cert)
    (certs / f"{subject_hash}.0").write_bytes(cert.read_bytes())
    monkeypatch.setenv("SSL_CERT_DIR", str(certs))
    assert _tls_post(cert, key, "localhost") == (b'{"tls": true}', 1)


def _openssl_subject_hash(cert: Path) -> str:
    """The file name OpenSSL looks a CA up by in a hashed directory (``openssl x509 -hash``)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to name a file of an SSL_CERT_DIR")
    done = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(cert)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_https_to_a_plain_http_upstream_fails_without_a_plaintext_retry() -> None:
    """A plain-text server that speaks first: the TLS handshake fails, nothing is retried."""
    connections = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        writer.write(ok(b"{}"))
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = FastPool(4, 60.0)
        try:
            with pytest.raises(ssl.SSLError):
                await pool.post(f"https://127.0.0.1:{port}/v1", {}, b"{}", 1000, 100)
        finally:
            await pool.aclose()
            server.close()
            await server.wait_closed()

    asyncio.run(main())
    assert connections[0] == 1
