"""A consumer's budget and token limit through ``/v1`` on one served gateway with Redis: the
worst case reserved before the call, settled with the real usage after it (plain and
streamed), charged when a stream is cut, never exceeded by concurrent callers, rebuilt from
the ledger, refused with 503 while Redis is down; ``insufficient_quota`` in OpenAI's shape."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from builders import write_manifests
from gated_upstream import GatedUpstream
from gwconfig.db.session import open_database
from gwconfig.server.state import ServeSettings
from gwconfig.shared.backend import ConsumerKeys
from gwconfig.shared.ledger import MemoryLedger, period_start
from reconcile_helpers import apply
from redis_server import RedisServer
from serve_helpers import ServedApp, make_token, serve_app
from shared_serve import PRICING, shared_manifests

NOON = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)
BUDGET_USD = 0.002  # 2000 micro-USD: about 18 worst cases of the request below


@dataclass
class Team:
    """A served gateway whose token ``team-app`` belongs to consumer ``team``."""

    served: ServedApp
    token: str
    redis: redis.Redis
    ledger: MemoryLedger
    keys: ConsumerKeys

    def post(self, body: dict[str, Any], **kw: Any) -> httpx.Response:
        with self.served.client(self.token) as http:
            return http.post("/v1/chat/completions", content=orjson.dumps(body), **kw)

    def spent(self) -> int:
        value = self.redis.get(self.keys.spend)
        return int(value) if value is not None else -1

    def pending(self) -> int:
        return int(self.redis.get(self.keys.pending) or 0)

    def settled(self) -> int:
        """The spend once no reservation is held (the answer's last byte may reach the client
        before its request is settled)."""
        deadline = time.monotonic() + 20
        while self.pending() != 0:
            assert time.monotonic() < deadline, "the reservation was not settled"
            time.sleep(0.01)
        return self.spent()


def worst_micro(body: dict[str, Any], out: int) -> int:
    """The reservation of ``body``: one token per body byte in, ``out`` tokens out."""
    usd = len(orjson.dumps(body)) * 1e-6 * PRICING["input_per_1m"] + out * 2e-6
    return math.ceil(usd * 1_000_000 - 1e-6)


def gated_provider(upstream: GatedUpstream) -> dict[str, Any]:
    return {
        "apiVersion": "gwconfig/v1", "kind": "Provider", "provider_id": "gated",
        "provider_type": "openai", "connection": {"api_base": upstream.base_url + "/v1"},
        "api_keys": [{"name": "default", "value": {"env": "UP_KEY"}}],
        "request_settings": {"max_retries": 0, "timeout_seconds": 30},
        "models": [{"model_id": "gpt-ok", "max_tokens": 16, "pricing": PRICING}],
    }  # fmt: skip


@pytest.fixture
def upstream() -> Iterator[GatedUpstream]:
    server = GatedUpstream().start()
    yield server
    if server.arrived:  # a held call: let it finish
        server.release()
    server.stop()


@pytest.fixture
def team(
    sqlite_url: str,
    redis_server: RedisServer,
    upstream: GatedUpstream,
    fernet_key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Team]:
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.setenv("UP_KEY", "sk-up-" + "k" * 24)
    open_database(sqlite_url, upgrade=True).dispose()
    team_consumer = {
        "apiVersion": "gwconfig/v1", "kind": "Consumer", "name": "team",
        "models": ["local", "gated/*"],
        "limits": {"tpm": 100_000}, "budget": {"usd": BUDGET_USD, "period": "day"},
    }  # fmt: skip
    manifests = [*shared_manifests(), gated_provider(upstream), team_consumer]
    apply(write_manifests(tmp_path / "m", *manifests), sqlite_url)
    # a token of the consumer (what ``gwconfig tokens create --consumer team`` makes)
    token = make_token(sqlite_url, "invoke", name="team-app", consumer="team")
    settings = ServeSettings(
        database_url=sqlite_url, redis_url=redis_server.url, redis_timeout_ms=5000
    )
    ledger = MemoryLedger()
    with serve_app(settings) as served:
        guard = served.state.limits
        assert guard is not None and guard.mode == "redis"
        guard.limits.ledger = ledger
        guard.limits.clock = lambda: NOON.timestamp()  # one budget day, whatever the hour
        day = period_start("day", NOON).date().isoformat()
        client = redis.Redis.from_url(redis_server.url)
        yield Team(served, token, client, ledger, ConsumerKeys.of("team", day))
        client.close()


BODY = {"model": "local", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


def test_an_answer_is_charged_its_usage_and_the_reservation_goes(team: Team) -> None:
    answer = team.post(BODY)
    assert answer.status_code == 200, answer.text
    usage = answer.json()["usage"]
    assert team.settled() == usage["prompt_tokens"] * 1 + usage["completion_tokens"] * 2
    assert answer.headers["x-ratelimit-limit-tokens"] == "100000"

    streamed = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    before = team.spent()
    with team.served.client(team.token) as http:
        events = http.post("/v1/chat/completions", content=orjson.dumps(streamed)).text
    last = [orjson.loads(e[6:]) for e in events.splitlines() if e.startswith("data: {")][-1]
    charged = last["usage"]["prompt_tokens"] + 2 * last["usage"]["completion_tokens"]
    assert team.settled() - before == charged


def test_concurrent_callers_never_exceed_the_budget(team: Team) -> None:
    async def caller(http: httpx.AsyncClient, out: list[int]) -> None:
        while True:
            r = await http.post("/v1/chat/completions", content=orjson.dumps(BODY))
            out.append(r.status_code)
            if r.status_code != 200:
                assert r.json()["error"]["code"] == "insufficient_quota", r.text
                return

    async def go() -> list[int]:
        out: list[int] = []
        headers = {"Authorization": f"Bearer {team.token}"}
        async with httpx.AsyncClient(base_url=team.served.base_url, headers=headers,
                                     timeout=30) as http:  # fmt: skip
            await asyncio.gather(*(caller(http, out) for _ in range(12)))
        return out

    statuses = asyncio.run(go())
    assert set(statuses) == {200, 429} and statuses.count(429) == 12
    limit = round(BUDGET_USD * 1_000_000)
    assert team.settled() <= limit  # never over: every admitted worst case fitted
    assert team.spent() > limit - 13 * worst_micro(BODY, 8)  # and the budget was used


def test_a_spent_budget_is_rebuilt_from_the_ledger_after_flushall(team: Team) -> None:
    team.ledger.record("team", NOON, BUDGET_USD - 0.00001)  # almost all spent
    refused = team.post(BODY)
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "insufficient_quota"
    team.redis.flushall()
    again = team.post(BODY)  # the counter is gone: rebuilt from the ledger, still spent
    assert again.status_code == 429 and "spent its budget" in again.json()["error"]["message"]


def test_a_stream_cut_by_its_client_is_charged_its_reservation(
    team: Team, upstream: GatedUpstream
) -> None:
    body = {"model": "gated/gpt-ok", "stream": True, "max_tokens": 10,
            "messages": [{"role": "user", "content": "x"}]}  # fmt: skip
    headers = {"Authorization": f"Bearer {team.token}"}
    with (
        httpx.Client(base_url=team.served.base_url, timeout=60) as http,
        http.stream(
            "POST", "/v1/chat/completions", content=orjson.dumps(body), headers=headers
        ) as resp,  # fmt: skip
    ):
        assert resp.status_code == 200
        assert team.pending() == worst_micro(body, 10)  # held while the stream runs
        next(line for line in resp.iter_lines() if line.startswith("data: "))
    assert upstream.closed.wait(60), "the upstream call was not cancelled"
    assert team.settled() == worst_micro(body, 10)


def test_budgets_fail_closed_while_redis_is_down(team: Team, redis_server: RedisServer) -> None:
    assert team.post(BODY).status_code == 200
    redis_server.stop()
    down = team.post(BODY)
    assert down.status_code == 503, down.text
    assert down.json()["error"]["code"] == "shared_state_unavailable"
    assert "budget" in down.json()["error"]["message"]
