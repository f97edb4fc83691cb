"""Three ``gwconfig serve --workers 2`` processes on one PostgreSQL database and one Redis: a
token's request limit holds exactly over all six workers; with Redis stopped the limits fall
back to per-process counters (never a 500)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from builders import write_manifests
from gwconfig.db.session import open_database
from reconcile_helpers import apply
from redis_server import RedisServer
from serve_helpers import make_token
from shared_serve import serve_processes, shared_manifests

pytestmark = pytest.mark.slow
MESSAGE = {"model": "local", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


async def _spread(urls: list[str], token: str, n: int) -> list[httpx.Response]:
    """``n`` concurrent requests, round robin over ``urls``."""
    auth = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        calls = [
            http.post(f"{urls[i % len(urls)]}/v1/chat/completions", json=MESSAGE, headers=auth)
            for i in range(n)
        ]
        return list(await asyncio.gather(*calls))


def test_a_token_limit_holds_over_three_processes_of_two_workers(
    pg_url: str,
    redis_server: RedisServer,
    fernet_key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    open_database(pg_url, upgrade=True).dispose()
    apply(write_manifests(tmp_path / "m", *shared_manifests()), pg_url)
    token = make_token(pg_url, "invoke", name="app", rpm=40)
    args = ["--database-url", pg_url, "--redis-url", redis_server.url,
            "--redis-timeout-ms", "5000"]  # fmt: skip
    env = {"GWCONFIG_ENCRYPTION_KEY": fernet_key}
    with serve_processes(3, args, env, tmp_path) as procs:
        urls = [p.base_url for p in procs]
        answers = asyncio.run(_spread(urls, token, 120))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [200] * 40 + [429] * 80
        for r in answers:
            if r.status_code == 429:
                assert r.json()["error"]["code"] == "rate_limit_exceeded"
                assert int(r.headers["retry-after"]) >= 1
                assert r.headers["x-ratelimit-limit-requests"] == "40"
                assert r.headers["x-ratelimit-remaining-requests"] == "0"
                assert r.headers["x-ratelimit-reset-requests"].endswith("s")
        ready = httpx.get(urls[0] + "/readyz").json()
        assert ready["shared_state"] == "redis" and ready["shared_state_breaker"] == "closed"

        redis_server.stop()  # Redis goes away: request limits fall back to per-process ones
        other = make_token(pg_url, "invoke", name="app2", rpm=4)
        answers = asyncio.run(_spread(urls, other, 30))
        codes = [r.status_code for r in answers]
        assert set(codes) <= {200, 429} and codes.count(200) >= 4  # each worker: ceil(4/2)
        assert codes.count(200) <= 12  # six workers, two each
        metrics = httpx.get(urls[0] + "/metrics", headers={"Authorization": f"Bearer {other}"})
        assert 'gwconfig_limit_decisions_total{outcome="fallback"}' in metrics.text
    assert not any("Traceback" in line for p in procs for line in p.lines)
