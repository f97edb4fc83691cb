"""The one routing loop: ``generate`` and ``generate_stream`` make the same decisions.

Retries, backoff sleeps, fallbacks, cooldowns, deadlines, errors and usage rows are compared
between the two paths on the same failing targets; a stream falls back only before its first
chunk. The runtime package itself has no import cycle and no reach-through into another
module's private members (the loop is written once, not copied with borrowed internals).
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import gwconfig.runtime
from gwconfig.db.models import UsageRecord
from gwconfig.db.session import open_database
from gwconfig.runtime import (
    ConfigLoader,
    GatewayConfig,
    InterventionContext,
    LLMConfig,
    LLMGatewayClient,
    LLMRequest,
    ProviderFactory,
    ProviderUnavailableError,
    StreamChunk,
)
from gwconfig.runtime.providers.base import ProviderCall
from gwconfig.runtime.providers.mock import MockProvider
from runtime_servers import FAST, provider_doc, write_compiled

RUNTIME = Path(gwconfig.runtime.__file__).parent


def req(model: str, **kw: Any) -> LLMRequest:
    return LLMRequest("hi there", LLMConfig(model_identifier=model, **kw), InterventionContext("s"))


# Each scenario: the models of provider "p" (mock knobs), its request settings, the route's
# targets, and how many requests to send in a row (cooldowns carry over between them).
SCENARIOS: dict[str, tuple[list[dict[str, Any]], dict[str, Any], list[str], int]] = {
    "retry then answer": (
        [{"model_id": "flaky", "parameters": {"fail_times": 2, "reply": "late"}}],
        {"max_retries": 2},
        ["flaky"],
        1,
    ),
    "retries exhausted, fall back": (
        [{"model_id": "dead", "parameters": {"fail_times": 99}}, "ok"],
        {"max_retries": 1},
        ["dead", "ok"],
        2,
    ),
    "not retryable (401), fall back": (
        [{"model_id": "auth", "parameters": {"fail_times": 99, "fail_status": 401}}, "ok"],
        {"max_retries": 3},
        ["auth", "ok"],
        1,
    ),
    "bad request: no retry, no fallback": (
        [{"model_id": "bad", "parameters": {"fail_times": 99, "fail_status": 400}}, "ok"],
        {"max_retries": 3},
        ["bad", "ok"],
        1,
    ),
    "every target fails": (
        [
            {"model_id": "a", "parameters": {"fail_times": 99}},
            {"model_id": "b", "parameters": {"fail_times": 99, "fail_status": 500}},
        ],
        {"max_retries": 1},
        ["a", "b"],
        2,
    ),
    "Retry-After is a floor": (
        [
            {
                "model_id": "m",
                "parameters": {"fail_times": 2, "fail_status": 429, "retry_after": 0.5},
            }
        ],
        {"max_retries": 3, "backoff_max_seconds": 1.0},
        ["m"],
        1,
    ),
    "Retry-After past the cap: give up, fall back": (
        [
            {
                "model_id": "m",
                "parameters": {"fail_times": 9, "fail_status": 429, "retry_after": 5},
            },
            "ok",
        ],
        {"max_retries": 3, "backoff_max_seconds": 1.0},
        ["m", "ok"],
        1,
    ),
    "cooldown skips the failing target": (
        [{"model_id": "bad", "parameters": {"fail_times": 999}}, "good"],
        {"max_retries": 0, "cooldown_failures": 2, "cooldown_seconds": 600},
        ["bad", "good"],
        4,
    ),
    "backoff past the deadline": (
        [{"model_id": "slow", "parameters": {"fail_times": 9}}, "ok"],
        {"max_retries": 3, "backoff_initial_seconds": 50, "backoff_max_seconds": 60},
        ["slow", "ok"],
        1,
    ),
}


def scenario_config(tmp_path: Path, name: str) -> GatewayConfig:
    models, settings, targets, _n = SCENARIOS[name]
    p = provider_doc("p", "mock", models, request_settings={**FAST, **settings})
    routes = [{"name": "r", "targets": [{"model": f"p/{t}"} for t in targets]}]
    path = write_compiled(tmp_path / "compiled.json", [p], routes=routes)
    return ConfigLoader(path).load_config_as_object()


async def send(client: LLMGatewayClient, request: LLMRequest, streaming: bool) -> Any:
    """One request by either path, as comparable data (what the caller can observe)."""
    try:
        if streaming:
            stream = client.generate_stream(request)
            text = "".join([c async for c in stream])
            response = stream.response
            assert response is not None and response.generated_content == text
        else:
            response = await client.generate(request)
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))
    return (
        "ok",
        response.generated_content,
        response.provider_id,
        response.model_id,
        response.usage,
        response.finish_reason,
        response.route,
        [(a.provider_id, a.model_id, a.outcome, a.error) for a in response.attempts],
    )


def observe(tmp_path: Path, name: str, streaming: bool) -> dict[str, Any]:
    """Everything the routing decided for the scenario's requests on one path."""
    cfg = scenario_config(tmp_path, name)
    db = open_database(f"sqlite:///{tmp_path / ('s' if streaming else 'p')}.db", upgrade=True)
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    async def main() -> dict[str, Any]:
        async with LLMGatewayClient(cfg, ProviderFactory(), db, sleep=fake_sleep) as client:
            results = [
                await send(client, req("r", deadline_seconds=30), streaming)
                for _ in range(SCENARIOS[name][3])
            ]
            return {"results": results, "cooling": client.cooling_targets()}

    seen = asyncio.run(main())
    with db.engine.connect() as conn:
        rows = conn.execute(select(UsageRecord.__table__).order_by(UsageRecord.id)).mappings()
        fields = ("provider_id", "model_id", "attempts", "outcome", "error", "prompt_tokens")
        seen["usage"] = [tuple(r[f] for f in fields) for r in rows]
    db.engine.dispose()
    seen["slept"] = slept
    return seen


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_plain_and_streaming_make_the_same_routing_decisions(tmp_path: Path, name: str) -> None:
    plain = observe(tmp_path, name, streaming=False)
    streamed = observe(tmp_path, name, streaming=True)
    assert plain == streamed
    assert plain["usage"] and len(plain["usage"]) == len(plain["results"])


def test_the_scenarios_exercise_each_decision(tmp_path: Path) -> None:
    """The comparison above is not vacuous: each scenario does what its name says."""
    seen = {}
    for i, name in enumerate(SCENARIOS):
        (tmp_path / str(i)).mkdir()
        seen[name] = observe(tmp_path / str(i), name, streaming=False)
    outcomes = {n: [r[0] if r[0] == "ok" else r[1] for r in s["results"]] for n, s in seen.items()}
    assert outcomes["retry then answer"] == ["ok"]
    assert len(seen["retry then answer"]["results"][0][-1]) == 3
    assert outcomes["bad request: no retry, no fallback"] == ["BadRequestError"]
    assert outcomes["every target fails"] == ["AllTargetsFailedError"] * 2
    assert seen["Retry-After is a floor"]["slept"] == [0.5, 0.5]
    assert seen["Retry-After past the cap: give up, fall back"]["slept"] == []
    assert outcomes["backoff past the deadline"] == ["DeadlineExceededError"]
    cooldown = seen["cooldown skips the failing target"]
    assert [len(r[-1]) for r in cooldown["results"]] == [2, 2, 1, 1]
    assert cooldown["cooling"] == ["p/bad"]


class BreaksAfterFirstChunk(MockProvider):
    """Streams one chunk, then fails (a connection lost mid-answer)."""

    provider_type = "breaks"

    async def stream(self, call: ProviderCall) -> AsyncIterator[StreamChunk]:
        self.calls[call.model.model_id] = self.calls.get(call.model.model_id, 0) + 1
        yield StreamChunk("first ")
        raise ProviderUnavailableError("lost the connection", status=503)


class FailsBeforeFirstChunk(MockProvider):
    """A stream that fails before it sends anything."""

    provider_type = "fails"

    async def stream(self, call: ProviderCall) -> AsyncIterator[StreamChunk]:
        raise ProviderUnavailableError("not now", status=503)
        yield  # pragma: no cover - makes this an async generator


class EmptyStream(MockProvider):
    """A stream that ends before any data."""

    provider_type = "empty"

    async def stream(self, call: ProviderCall) -> AsyncIterator[StreamChunk]:
        self.calls[call.model.model_id] = self.calls.get(call.model.model_id, 0) + 1
        return
        yield  # pragma: no cover - makes this an async generator


def two_target_client(tmp_path: Path, first_type: str, db: Any) -> LLMGatewayClient:
    settings = {**FAST, "max_retries": 0, "cooldown_failures": 1, "cooldown_seconds": 600}
    first = provider_doc("x", first_type, ["m"], request_settings=settings)
    ok = provider_doc("p", "mock", [{"model_id": "ok", "parameters": {"reply": "fallback"}}])
    routes = [{"name": "r", "targets": [{"model": "x/m"}, {"model": "p/ok"}]}]
    path = write_compiled(tmp_path / "compiled.json", [first, ok], routes=routes)
    factory = ProviderFactory(use_entry_points=False)
    factory.register("breaks", BreaksAfterFirstChunk)
    factory.register("empty", EmptyStream)
    factory.register("fails", FailsBeforeFirstChunk)
    return LLMGatewayClient(ConfigLoader(path).load_config_as_object(), factory, db)


def test_stream_does_not_fall_back_after_its_first_chunk(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'usage.db'}", upgrade=True)

    async def main() -> tuple[list[str], Exception, Any, str, list[str]]:
        async with two_target_client(tmp_path, "breaks", db) as client:
            stream = client.generate_stream(req("r"))
            got: list[str] = []
            with pytest.raises(ProviderUnavailableError) as info:
                async for text in stream:
                    got.append(text)
            response = stream.response
            cooling = client.cooling_targets()
            # the failure counts against the target: the next request skips it
            after = await client.generate(req("r"))
            return got, info.value, response, after.model_id, cooling

    got, exc, response, next_model, cooling = asyncio.run(main())
    assert got == ["first "] and "lost the connection" in str(exc)
    assert response is None  # no answer was completed
    assert cooling == ["x/m"] and next_model == "ok"
    with db.engine.connect() as conn:
        rows = conn.execute(select(UsageRecord.__table__).order_by(UsageRecord.id)).mappings()
        recorded = [(r["provider_id"], r["outcome"], r["attempts"]) for r in rows]
    db.engine.dispose()
    # the fallback target was never tried for the stream
    assert recorded == [("x", "stream_error", 1), ("p", "ok", 1)]


@pytest.mark.parametrize("first_type", ["empty", "fails"])
def test_stream_falls_back_while_no_chunk_has_come(tmp_path: Path, first_type: str) -> None:
    async def main() -> tuple[list[str], Any]:
        async with two_target_client(tmp_path, first_type, None) as client:
            stream = client.generate_stream(req("r"))
            return [c async for c in stream], stream.response

    chunks, response = asyncio.run(main())
    assert chunks == ["fallback"] and response.model_id == "ok"
    outcomes = [(a.provider_id, a.outcome) for a in response.attempts]
    assert outcomes[0][0] == "x" and outcomes[0][1] != "ok" and outcomes[1:] == [("p", "ok")]


# -- structure: the loop is written once ----------------------------------------------------------


def runtime_modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(RUNTIME.rglob("*.py")):
        rel = path.relative_to(RUNTIME.parent.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def imported_modules(tree: ast.Module, known: set[str]) -> set[str]:
    """Modules of ``known`` that ``tree`` imports anywhere (top level, functions, TYPE_CHECKING)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found & known


def test_runtime_has_no_import_cycle() -> None:
    modules = runtime_modules()
    graph = {name: imported_modules(tree, set(modules)) - {name} for name, tree in modules.items()}
    cycles = []
    for start in graph:
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(" -> ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    # the package __init__ re-exports everything; a cycle through it is no design smell
    assert [c for c in cycles if "gwconfig.runtime -> " not in c + " "] == []


def test_runtime_modules_use_no_private_member_of_another_module() -> None:
    offences = []
    for name, tree in runtime_modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                offences += [f"{name}: imports {a.name}" for a in node.names if private(a.name)]
            elif isinstance(node, ast.Attribute) and private(node.attr):
                owner = node.value
                if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                    offences.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    assert offences == []


def private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")
