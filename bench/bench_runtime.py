"""Runtime benchmarks: config load (file, PostgreSQL), client overhead (mock, loopback HTTP).

    .venv/bin/python bench/bench_runtime.py [--scale 5] [--requests 10000] [--skip-postgres]
        [--load-only]

Prints medians. Targets: load of catalogue x5 <= 0.2 s from PostgreSQL and from the
compiled file; generate() on the mock provider <= 50 us; against a loopback OpenAI-compatible
server within 10% of a bare httpx client. PostgreSQL comes from ``GWCONFIG_BENCH_POSTGRES_URL``
(else ``GWCONFIG_TEST_POSTGRES_URL``); a scratch database is created and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from corpus import compiled_config, corpus_env
from gwconfig.runtime import (
    AmbiguousModelError,
    ConfigLoader,
    GatewayConfig,
    LLMConfig,
    LLMGatewayClient,
    LLMRequest,
)


def median_time(fn: Any, runs: int) -> float:
    """Median wall time of ``fn()`` over ``runs`` runs (seconds).

    Each result is kept until the clock has stopped (a loaded configuration lives on in a real
    process; freeing the previous one is not part of loading the next).
    """
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        del result
    return statistics.median(times)


def deferred_gc_time(loader: Any, runs: int) -> float:
    """Median time of the young-generation GC pass a load leaves behind.

    The loader pauses the cyclic GC while it builds; the objects it made are scanned once by the
    next young collection, which Python runs right after the load (not counted in the load).
    """
    times = []
    for _ in range(runs):
        gc.collect()
        config = loader.load_config_as_object()
        t0 = time.perf_counter()
        gc.collect(0)
        times.append(time.perf_counter() - t0)
        del config
    return statistics.median(times)


#: a provider/model id, a bare model id (ambiguous: the catalogue copies share it), an alias
FIRST_IDS = ("openai/gpt-4o-mini", "gpt-4o-mini", "anthropic:claude-opus-latest")


def first_resolve_time(loader: Any, runs: int) -> float:
    """Median time of the first resolutions on a freshly loaded config (lazy indexes, rows)."""
    times = []
    for _ in range(runs):
        config = loader.load_config_as_object()
        t0 = time.perf_counter()
        for identifier in FIRST_IDS:
            with contextlib.suppress(AmbiguousModelError):
                config.resolve(identifier)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_file(compiled: Any, runs: int) -> GatewayConfig:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "compiled.json"
        path.write_bytes(compiled.to_json_bytes())
        size = path.stat().st_size / 1e6
        loader = ConfigLoader(path)
        config = loader.load_config_as_object()
        t = median_time(loader.load_config_as_object, runs)
        n = sum(len(p.models) for p in config.providers.values())
        print(f"load from compiled file ({size:.1f} MB, {n} models): median {t * 1000:.0f} ms")
        t = deferred_gc_time(loader, runs)
        print(f"  young-generation GC pass after the load: median {t * 1000:.0f} ms")
        t = first_resolve_time(loader, runs)
        print(f"  first resolution of {len(FIRST_IDS)} ids, fresh config: median {t * 1000:.2f} ms")
        verified = ConfigLoader(path, verify_hash=True)
        t = median_time(verified.load_config_as_object, runs)
        print(f"  ... with verify_hash=True: median {t * 1000:.0f} ms")
    return config


def bench_postgres(compiled: Any, runs: int, file_config: GatewayConfig) -> None:
    from cryptography.fernet import Fernet
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from gwconfig.db.rows import insert_config
    from gwconfig.db.session import open_database
    from gwconfig.secrets.keys import EncryptionKeys

    base_url = os.environ.get("GWCONFIG_BENCH_POSTGRES_URL") or os.environ.get(
        "GWCONFIG_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
    )
    base = make_url(base_url)
    name = f"gwbench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = base.set(database=name).render_as_string(hide_password=False)
    key = Fernet.generate_key().decode()
    os.environ["GWCONFIG_ENCRYPTION_KEY"] = key
    try:
        db = open_database(url, upgrade=True)
        with db.engine.begin() as conn:
            insert_config(conn, compiled.data, EncryptionKeys(key))
        loader = ConfigLoader(db.engine)
        config = loader.load_config_as_object()
        assert config == file_config, "database and file configurations differ"
        t = median_time(loader.load_config_as_object, runs)
        print(f"load from PostgreSQL (same config, keys decrypted): median {t * 1000:.0f} ms")
        t = deferred_gc_time(loader, runs)
        print(f"  young-generation GC pass after the load: median {t * 1000:.0f} ms")
        t = first_resolve_time(loader, runs)
        print(f"  first resolution of {len(FIRST_IDS)} ids, fresh config: median {t * 1000:.2f} ms")
        t = median_time(loader.current_version, runs)
        print(f"  change check (current_version): median {t * 1000:.1f} ms")
        db.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def mock_config() -> GatewayConfig:
    from gwconfig.manifests.compile import build_config
    from gwconfig.manifests.model import GatewayManifest, ProviderManifest

    provider = ProviderManifest.model_validate(
        {
            "apiVersion": "gwconfig/v1",
            "kind": "Provider",
            "provider_id": "mock",
            "provider_type": "mock",
            "models": [{"model_id": "chat", "parameters": {"reply": "Hello!"}}],
        }
    )
    gateway = GatewayManifest.model_validate(
        {
            "apiVersion": "gwconfig/v1",
            "kind": "Gateway",
            "routes": [{"name": "local-chat", "targets": [{"model": "mock/chat"}]}],
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.json"
        path.write_bytes(build_config([provider], gateway).to_json_bytes())
        return ConfigLoader(path).load_config_as_object()


async def _mock_overhead(requests: int) -> list[float]:
    config = mock_config()
    request = LLMRequest("Hello, world!", LLMConfig(model_identifier="local-chat"))
    times: list[float] = []
    async with LLMGatewayClient(config) as client:
        for _ in range(200):
            await client.generate(request)
        clock = time.perf_counter_ns
        for _ in range(requests):
            t0 = clock()
            await client.generate(request)
            times.append((clock() - t0) / 1000.0)
    return times


SERVER = r"""
import sys, uvicorn
BODY = (b'{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}')
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        msg = await receive()
        more = msg.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": BODY})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error", access_log=False)
"""


def loopback_config(base: str) -> GatewayConfig:
    from gwconfig.manifests.compile import build_config
    from gwconfig.manifests.model import ProviderManifest

    provider = ProviderManifest.model_validate(
        {
            "apiVersion": "gwconfig/v1",
            "kind": "Provider",
            "provider_id": "local-vllm",
            "provider_type": "openai",
            "connection": {"api_base": base + "/v1"},
            "models": [{"model_id": "m"}],
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.json"
        path.write_bytes(build_config([provider], None).to_json_bytes())
        return ConfigLoader(path).load_config_as_object()


async def _loopback(base: str, rounds: int, per_round: int) -> tuple[list[float], list[float]]:
    import httpx
    import orjson

    config = loopback_config(base)
    request = LLMRequest("Hello, world!", LLMConfig(model_identifier="local-vllm/m"))
    url = base + "/v1/chat/completions"
    body = {"model": "m", "messages": [{"role": "user", "content": "Hello, world!"}]}
    bare_times: list[float] = []
    gw_times: list[float] = []
    clock = time.perf_counter_ns
    async with httpx.AsyncClient() as bare, LLMGatewayClient(config) as gateway:

        async def bare_call() -> str:
            resp = await bare.post(
                url, content=orjson.dumps(body), headers={"content-type": "application/json"}
            )
            resp.raise_for_status()
            return str(orjson.loads(resp.content)["choices"][0]["message"]["content"])

        for _ in range(100):  # warm both connection pools
            await bare_call()
            await gateway.generate(request)
        for _ in range(rounds):
            for _ in range(per_round):
                t0 = clock()
                await bare_call()
                bare_times.append((clock() - t0) / 1000.0)
            for _ in range(per_round):
                t0 = clock()
                await gateway.generate(request)
                gw_times.append((clock() - t0) / 1000.0)
    return bare_times, gw_times


def bench_loopback(requests: int) -> None:
    port = harness.free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("loopback server did not start") from None
                time.sleep(0.05)
        per_round = 10  # alternate in short blocks so both see the same machine load
        rounds = max(requests // per_round, 2)
        bare, gw = asyncio.run(_loopback(f"http://127.0.0.1:{port}", rounds, per_round))
        mb, mg = statistics.median(bare), statistics.median(gw)
        print(
            f"loopback OpenAI-compatible server, {len(gw)} requests each: bare httpx median "
            f"{mb:.0f} us, LLMGatewayClient median {mg:.0f} us ({(mg / mb - 1) * 100:+.1f}%)"
        )
    finally:
        proc.terminate()
        proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    """Run the runtime benchmarks and print medians."""
    parser = harness.arguments(__doc__, scale=5, runs=11)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--loopback-requests", type=int, default=2_000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--load-only", action="store_true", help="only the load benchmarks")
    args = parser.parse_args(argv)

    os.environ.update(corpus_env(args.scale))
    compiled = compiled_config(args.scale)
    file_config = bench_file(compiled, args.runs)
    if not args.skip_postgres:
        bench_postgres(compiled, args.runs, file_config)
    if args.load_only:
        return 0
    times = asyncio.run(_mock_overhead(args.requests))
    print(
        f"generate() on the mock provider, {len(times)} requests: median "
        f"{statistics.median(times):.1f} us, p99 {statistics.quantiles(times, n=100)[98]:.1f} us"
    )
    bench_loopback(args.loopback_requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
