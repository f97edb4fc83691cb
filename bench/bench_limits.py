"""Shared-limits benchmark: what Redis-backed limits cost, and how exact they are.

    .venv/bin/python bench/bench_limits.py [--duration 10] [--runs 3] [--decisions 20000]
        [--database-url URL]

Installs ``wrk``, ``nginx-light`` and ``redis-server`` with apt-get when they are missing (this
script only; never in tests), starts its own redis-server on a free loopback port and nginx
answering a fixed ``chat.completion`` (as ``bench_serve.py``). Prints:

* requests/s at 16 connections through ``gwconfig serve --workers 1``: limits off (a token
  without a limit), per-process limits, and shared limits (``--redis-url``; the token's rpm
  too high to refuse, so every request pays its decision); goal: shared >= 0.85x off;
* the p50/p99 of one limit decision in process (the Lua round trip: a request window, and a
  consumer's tpm + budget reservation with its settle), many iterations; goal: p99 < 1 ms;
* the accuracy over 6 workers (3 processes x 2): a token with rpm 40, 120 concurrent requests,
  admitted with Redis (the default 50 ms timeout, and 1 s) and per process, with the decisions
  that fell back to per-process counters, beside LiteLLM's documented behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from bench_serve import BODY, ensure_tools, lua, median_runs, start_nginx

LITELLM = (
    "LiteLLM (documented): the TPM/RPM pre-check reads each instance's local memory, "
    "so N instances admit up to N x the limit"
)


@contextmanager
def redis_server(work: Path) -> Iterator[str]:
    """A private redis-server (no persistence) on a free port; its URL."""
    binary = harness.ensure_command("redis-server", "redis-server")
    port = harness.free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work),
        ],
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + harness.START_SECONDS
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(30)


def write_manifests(work: Path, upstream: int) -> Path:
    """One provider on nginx (priced) and the ``bench`` route."""
    root = work / "manifests"
    root.mkdir()
    provider = {
        "apiVersion": "gwconfig/v1",
        "kind": "Provider",
        "provider_id": "bench",
        "provider_type": "openai",
        "connection": {"api_base": f"http://127.0.0.1:{upstream}/v1"},
        "api_keys": [{"name": "default", "value": {"env": "BENCH_UPSTREAM_KEY"}}],
        "request_settings": {"max_retries": 0, "timeout_seconds": 30},
        "models": [
            {
                "model_id": "gpt-bench",
                "max_tokens": 64,
                "pricing": {"input_per_1m": 1.0, "output_per_1m": 2.0},
            }
        ],
    }
    gateway = {
        "apiVersion": "gwconfig/v1",
        "kind": "Gateway",
        "routes": [{"name": "bench", "targets": [{"model": "bench/gpt-bench"}]}],
    }
    (root / "bench.yaml").write_text(yaml.safe_dump(provider, sort_keys=False))
    (root / "gateway.yaml").write_text(yaml.safe_dump(gateway, sort_keys=False))
    return root


def throughput(args: Any, tool: str, work: Path, env: dict[str, str], redis_url: str) -> None:
    """wrk at 16 connections through one worker: limits off, per process, shared."""
    off = harness.run_cli(["tokens", "create", "off", "--scope", "invoke"], env, work).strip()
    on = harness.run_cli(
        ["tokens", "create", "on", "--scope", "invoke", "--rpm", "1000000"], env, work
    ).strip()
    url = env["GWCONFIG_DATABASE_URL"]
    base = ["--no-access-log"]
    rows = [
        ("limits off", off, base),
        ("per-process rpm", on, base),
        ("shared rpm (redis)", on, [*base, "--redis-url", redis_url]),
    ]
    print(
        f"wrk c=16, {args.runs} runs of {args.duration} s, median; serve --workers 1; "
        f"load {harness.load_average()}"
    )
    print(f"{'':24} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    rps: dict[str, float] = {}
    for name, token, options in rows:
        with harness.serve(url, env, work, workers=1, options=options) as served:
            target = f"{served.base_url}/v1/chat/completions"
            for _ in range(200):
                httpx.post(
                    target,
                    json=BODY | {"model": "bench"},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=30,
                )
            r = median_runs(tool, target, 16, args, lua(work, token))
            rps[name] = r["rps"]
            print(
                f"{name:24} {r['rps']:>9.0f} {r['p50']:>8.3f} {r['p99']:>8.3f} {r['errors']:>7.0f}"
            )
    ratio = rps["shared rpm (redis)"] / rps["limits off"]
    print(f"shared / off: {ratio:.2f}x (goal >= 0.85x)")


def decisions(n: int, redis_url: str) -> None:
    """p50/p99 of one decision in process: a window hit, a reservation with its settle."""
    from gwconfig.runtime.config.consumers import ConsumerPolicy
    from gwconfig.shared.limits import Ask, SharedLimits
    from gwconfig.shared.redis_backend import RedisBackend

    async def go() -> tuple[list[float], list[float]]:
        backend = RedisBackend(redis_url, timeout=1.0)
        limits = SharedLimits(backend)
        hits, holds = [], []
        consumer = ConsumerPolicy(
            name="bench", models=("*",), tpm=10**12, budget_usd=10**6, budget_period="day"
        )
        ask = Ask("t", consumer=consumer, tokens=200, cost_usd=0.0002)
        for _ in range(200):
            await limits.hit("t", "warm", 10**9)
        for _ in range(n):
            t0 = time.perf_counter()
            await limits.hit("t", "bench", 10**9)
            hits.append((time.perf_counter() - t0) * 1000)
        for _ in range(n // 2):
            t0 = time.perf_counter()
            admission = await limits.admit(ask)
            await admission.settle(150, 0.00015)
            holds.append((time.perf_counter() - t0) * 1000)
        await limits.aclose()
        return hits, holds

    hits, holds = asyncio.run(go())

    def p(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=1000)[int(q * 1000) - 1]

    print(
        f"limit decision in process over loopback Redis ({n} window hits, {n // 2} "
        "reservations + settles):"
    )
    print(
        f"  request window (1 script):        p50 {p(hits, 0.5):.3f} ms, "
        f"p99 {p(hits, 0.99):.3f} ms (goal p99 < 1 ms)"
    )
    print(
        f"  tpm + budget reserve + settle (2): p50 {p(holds, 0.5):.3f} ms, "
        f"p99 {p(holds, 0.99):.3f} ms"
    )


async def _spread(urls: list[str], token: str, n: int) -> list[int]:
    auth = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        calls = [
            http.post(
                f"{urls[i % len(urls)]}/v1/chat/completions",
                json=BODY | {"model": "bench"},
                headers=auth,
            )
            for i in range(n)
        ]
        return [r.status_code for r in await asyncio.gather(*calls)]


def accuracy(work: Path, env: dict[str, str], redis_url: str) -> None:
    """rpm 40 over 3 processes x 2 workers, 120 concurrent requests: admitted."""
    url = env["GWCONFIG_DATABASE_URL"]
    print("accuracy: token --rpm 40, 120 concurrent requests over 3 serve processes x 2 workers")
    runs = (
        ("redis 50ms", ["--redis-url", redis_url]),
        ("redis 1s", ["--redis-url", redis_url, "--redis-timeout-ms", "1000"]),
        ("per-process", []),
    )
    for i, (name, options) in enumerate(runs):
        token = harness.run_cli(
            ["tokens", "create", f"acc-{i}", "--scope", "invoke", "--rpm", "40"], env, work
        ).strip()
        with three_servers(url, env, work, ["--no-access-log", *options]) as urls:
            codes = asyncio.run(_spread(urls, token, 120))
            fallback = sum(fallbacks(u, token) for u in urls)
        ok, limited = codes.count(200), codes.count(429)
        print(
            f"  {name:12} admitted {ok:>3} of 120 (limit 40), 429: {limited}, "
            f"other: {len(codes) - ok - limited}; fell back to per-process counters (a Redis "
            f"call over its timeout): {fallback:.0f}"
        )
    print(f"  {LITELLM}: 3 x 40 = up to 120 admitted")


def fallbacks(base_url: str, token: str) -> float:
    """``gwconfig_limit_decisions_total{outcome="fallback"}`` of one serve (all its workers)."""
    text = httpx.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {token}"}).text
    prefix = 'gwconfig_limit_decisions_total{outcome="fallback"} '
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


@contextmanager
def three_servers(
    url: str, env: dict[str, str], work: Path, options: list[str]
) -> Iterator[list[str]]:
    """Three ``serve --workers 2`` processes, started one after the other."""
    with contextlib.ExitStack() as stack:
        served = [
            stack.enter_context(
                harness.serve(url, env, work, workers=2, options=options, ready_path="/readyz")
            )
            for _ in range(3)
        ]
        yield [s.base_url for s in served]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = harness.arguments(__doc__, scale=1, runs=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--decisions", type=int, default=20000, help="decisions timed")
    parser.add_argument("--database-url", default=None, help="default: a scratch SQLite file")
    args = parser.parse_args(argv)
    tool, nginx_path = ensure_tools()
    from cryptography.fernet import Fernet

    with tempfile.TemporaryDirectory(prefix="gwconfig-bench-limits-") as tmp:
        work = Path(tmp)
        nginx, upstream = start_nginx(nginx_path, work)
        try:
            with redis_server(work) as redis_url:
                env = {k: v for k, v in os.environ.items() if not k.startswith("GWCONFIG_")}
                env.update(
                    GWCONFIG_DATABASE_URL=args.database_url or f"sqlite:///{work / 'gw.db'}",
                    GWCONFIG_ENCRYPTION_KEY=Fernet.generate_key().decode(),
                    BENCH_UPSTREAM_KEY="sk-bench-" + secrets.token_hex(12),
                )
                harness.run_cli(["db", "upgrade"], env, work)
                root = write_manifests(work, upstream)
                harness.run_cli(["apply", str(root), "--auto-approve"], env, work)
                throughput(args, tool, work, env, redis_url)
                decisions(args.decisions, redis_url)
                accuracy(work, env, redis_url)
        finally:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
