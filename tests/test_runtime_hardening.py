"""Runtime hardening: secrets scrubbed from provider output, keys of other environments, request
deadlines, response size caps and streams that end early (real loopback servers)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from gwconfig.cli import cli
from gwconfig.db.models import UsageRecord
from gwconfig.db.session import open_database
from gwconfig.runtime import (
    AllTargetsFailedError,
    ConfigLoader,
    DeadlineExceededError,
    GatewayConfig,
    LLMConfig,
    LLMGatewayClient,
    LLMRequest,
    ProviderResponseError,
)
from gwconfig.runtime.scrub import Scrubber
from runtime_servers import FAST, FakeLLMServer, provider_doc, write_compiled

HTTP_TYPES = ("openai", "anthropic", "azure_openai")


@pytest.fixture
def server(module_server: FakeLLMServer) -> FakeLLMServer:
    module_server.reset()
    return module_server


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A key and an organisation generated for this run (nothing secret is committed)."""
    values = {
        "HARD_KEY": "sk-test-" + secrets.token_urlsafe(30),
        "HARD_ORG": "org-" + secrets.token_hex(12),
        "HARD_PROD_KEY": "sk-prod-" + secrets.token_urlsafe(30),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def _connection(ptype: str, server: FakeLLMServer, **extra: Any) -> dict[str, Any]:
    base = server.base_url + ("/v1" if ptype == "openai" else "")
    conn: dict[str, Any] = {"api_base": base, **extra}
    if ptype == "openai":
        org = {"name": "organization", "value": {"env": "HARD_ORG"}, "sensitive": True}
        conn["parameters"] = [org]
    return conn


def _config(
    tmp_path: Path,
    server: FakeLLMServer,
    ptype: str,
    models: list[Any],
    *,
    keys: list[dict[str, Any]] | None = None,
    settings: dict[str, Any] | None = None,
    routes: list[dict[str, Any]] | None = None,
    environment: str | None = None,
) -> GatewayConfig:
    doc = provider_doc(
        "p",
        ptype,
        models,
        api_keys=keys if keys is not None else [{"value": {"env": "HARD_KEY"}}],
        request_settings={**FAST, "max_retries": 0, "timeout_seconds": 5, **(settings or {})},
        connection=_connection(ptype, server),
    )
    path = write_compiled(tmp_path / "c.json", [doc], **({"routes": routes} if routes else {}))
    return ConfigLoader(path, environment=environment).load_config_as_object()


def _fragments(secret: str, n: int = 8) -> set[str]:
    return {secret[i : i + n] for i in range(len(secret) - n + 1)}


def _assert_clean(texts: list[str], *secrets_: str) -> None:
    for text in texts:
        for secret in secrets_:
            leaked = [f for f in _fragments(secret) if f in text]
            assert not leaked, f"{leaked[0]!r} of a secret in {text!r}"


# -- item 1: one scrubber for every text carrying provider output ---------------------------------

PREFIX = len("invalid api key Bearer ")
LEAKS = [
    ("leak:json:0", False),
    ("leak:text:0", False),
    ("leak:partial:0", False),
    ("leak:stream:0", True),
    # the key straddles the 200-character cut of the error detail by 1, 4, 9 and 20 characters
    *((f"leak:json:{200 - PREFIX - k}", False) for k in (1, 4, 9, 20)),
    *((f"leak:text:{200 - PREFIX - k}", False) for k in (1, 9)),
    *((f"leak:stream:{200 - len('stream error: ') - PREFIX - k}", True) for k in (1, 9)),
]


@pytest.mark.parametrize("ptype", HTTP_TYPES)
@pytest.mark.parametrize(("model", "stream"), LEAKS)
def test_echoed_credentials_never_leave_the_runtime(
    tmp_path: Path,
    memory_url: str,
    server: FakeLLMServer,
    creds: dict[str, str],
    ptype: str,
    model: str,
    stream: bool,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = _config(tmp_path, server, ptype, [model])
    db = open_database(memory_url, upgrade=True)

    request = LLMRequest("hi", LLMConfig(model_identifier=f"p/{model}"))
    exc = asyncio.run(_run(cfg, request, stream, db=db.engine, usage_flush_interval=0.01))
    assert isinstance(exc, AllTargetsFailedError), exc
    reasons = [f.reason for f in exc.failures]
    assert server.requests, "the upstream was called and echoed the credentials"
    with db.engine.connect() as conn:
        errors = [r.error for r in conn.execute(select(UsageRecord.__table__))]
    db.dispose()
    assert errors and all(errors)
    out, err = capsys.readouterr()
    texts = [str(exc), repr(exc), *reasons, *errors, caplog.text, out, err]
    _assert_clean(texts, creds["HARD_KEY"], creds["HARD_ORG"])
    if model.endswith(":0"):  # otherwise the mask itself may be past the cut
        assert "***" in str(exc)


@pytest.mark.parametrize("model", ["leak:json:0", "leak:stream:0", "leak:text:150"])
def test_generate_command_prints_no_secret(
    tmp_path: Path, server: FakeLLMServer, creds: dict[str, str], model: str
) -> None:
    cfg_path = tmp_path / "c.json"
    _config(tmp_path, server, "openai", [model])
    args = ["generate", "--config", str(cfg_path), "-m", f"p/{model}", "-v", "hi"]
    if "stream" in model:
        args.insert(1, "--stream")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    _assert_clean([result.output], creds["HARD_KEY"], creds["HARD_ORG"])


@pytest.mark.parametrize("cut", [150, 195, 199, 200, 201, 230])
def test_scrubber_scrubs_before_the_cut_and_every_encoding(cut: int) -> None:
    key = "sk-" + secrets.token_urlsafe(40) + "/+="
    scrub = Scrubber([key])
    text = "x" * (cut - 5) + "Bearer " + key + " tail"
    cut_text = scrub(text, 200)
    assert len(cut_text) <= 200
    _assert_clean([cut_text], key)
    from base64 import b64encode
    from urllib.parse import quote

    for form in (quote(key, safe=""), b64encode(key.encode()).decode(), key[:20] + "...", key):
        assert key[3:11] not in scrub(f"got {form} here")


# -- item 4: keys only for another environment ----------------------------------------------------


@pytest.mark.parametrize("ptype", [*HTTP_TYPES, "mock"])
@pytest.mark.parametrize("stream", [False, True])
def test_keys_only_for_other_environments_send_nothing(
    tmp_path: Path, server: FakeLLMServer, creds: dict[str, str], ptype: str, stream: bool
) -> None:
    keys = [
        {"value": {"env": "HARD_PROD_KEY"}, "environment": "production"},
        {"value": {"env": "HARD_PROD_KEY"}, "environment": "staging", "name": "other"},
    ]
    cfg = _config(tmp_path, server, ptype, ["gpt-4o"], keys=keys, environment="default")

    exc = asyncio.run(_run(cfg, LLMRequest("hi", LLMConfig(model_identifier="p/gpt-4o")), stream))
    assert isinstance(exc, AllTargetsFailedError), exc
    assert server.requests == []
    assert "no API key for environment 'default'" in str(exc)
    assert "'production', 'staging'" in str(exc)


def test_key_for_the_runtime_environment_is_still_used(
    tmp_path: Path, server: FakeLLMServer, creds: dict[str, str]
) -> None:
    keys = [{"value": {"env": "HARD_PROD_KEY"}, "environment": "production"}]
    cfg = _config(tmp_path, server, "openai", ["gpt-4o"], keys=keys, environment="production")

    async def main() -> str:
        async with LLMGatewayClient(cfg) as client:
            resp = await client.generate(LLMRequest("hi", LLMConfig("p/gpt-4o")))
            return resp.generated_content

    assert asyncio.run(main()) == "echo: hi"
    assert server.requests[0][1]["authorization"] == "Bearer " + creds["HARD_PROD_KEY"]


# -- item 11: request deadline, response size cap -------------------------------------------------


async def _run(cfg: GatewayConfig, request: LLMRequest, stream: bool, **kw: Any) -> Any:
    """The response, or the exception the request ended with."""
    async with LLMGatewayClient(cfg, **kw) as client:
        try:
            if not stream:
                return await client.generate(request)
            chunks = client.generate_stream(request)
            parts = [c async for c in chunks]
            return chunks.response, parts
        except Exception as exc:
            return exc


HANG_ROUTE = [{"name": "r", "targets": [{"model": "p/slow:600"}, {"model": "p/gpt-4o"}]}]


@pytest.mark.parametrize("ptype", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
def test_hanging_target_ends_at_the_deadline_without_further_attempts(
    tmp_path: Path, server: FakeLLMServer, creds: dict[str, str], ptype: str, stream: bool
) -> None:
    # timeout 30 s, 3 retries, then a fallback: without the deadline this takes 120 s and ends
    # with the answer of the second target; with it, one attempt and a DeadlineExceededError
    settings = {"timeout_seconds": 30, "max_retries": 3, "deadline_seconds": 0.3}
    cfg = _config(tmp_path, server, ptype, ["slow:600", "gpt-4o"], settings=settings,
                  routes=HANG_ROUTE)  # fmt: skip
    exc = asyncio.run(_run(cfg, LLMRequest("hi", LLMConfig("r")), stream))
    assert isinstance(exc, DeadlineExceededError), exc
    assert "within the request deadline of 0.3s, after 1 attempt\n" in str(exc)
    assert [r[2]["model"] for r in server.requests] == ["slow:600"]


def test_no_retry_starts_when_its_backoff_ends_after_the_deadline(
    tmp_path: Path, server: FakeLLMServer, creds: dict[str, str]
) -> None:
    settings = {"max_retries": 3, "backoff_initial_seconds": 10, "backoff_max_seconds": 30}
    settings["deadline_seconds"] = 5
    cfg = _config(tmp_path, server, "openai", ["fail:503:9"], settings=settings)
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    exc = asyncio.run(_run(cfg, LLMRequest("hi", LLMConfig("p/fail:503:9")), False,
                           sleep=fake_sleep))  # fmt: skip
    assert isinstance(exc, DeadlineExceededError) and "HTTP 503" in str(exc)
    assert slept == [] and len(server.requests) == 1


def test_per_request_deadline_bounds_providers_that_do_not_enforce_it(tmp_path: Path) -> None:
    from gwconfig.runtime import BaseProvider, ProviderFactory

    class Stuck(BaseProvider):
        """A plugin that never answers and knows nothing of deadlines."""

        requires_api_key = False

        async def complete(self, call: Any) -> Any:
            await asyncio.Event().wait()

        async def stream(self, call: Any) -> Any:  # type: ignore[override]
            await asyncio.Event().wait()
            yield None

    factory = ProviderFactory()
    factory.register("stuck", Stuck)
    doc = provider_doc("s", "stuck", ["m"], request_settings={"timeout_seconds": 60})
    cfg = ConfigLoader(write_compiled(tmp_path / "c.json", [doc])).load_config_as_object()
    request = LLMRequest("hi", LLMConfig("s/m", deadline_seconds=0.2))
    for stream in (False, True):
        exc = asyncio.run(_run(cfg, request, stream, factory=factory))
        assert isinstance(exc, DeadlineExceededError), exc


BIG = 64 * 1024 * 1024


@pytest.mark.parametrize("ptype", ["openai", "anthropic"])
def test_oversized_reply_is_refused_without_reading_it_all(
    tmp_path: Path, server: FakeLLMServer, creds: dict[str, str], ptype: str
) -> None:
    model = f"big:{BIG}"
    cfg = _config(tmp_path, server, ptype, [model], settings={"max_response_bytes": 1 << 20})
    exc = asyncio.run(_run(cfg, LLMRequest("hi", LLMConfig(f"p/{model}")), False))
    assert isinstance(exc, AllTargetsFailedError)
    assert "larger than max_response_bytes (1048576 bytes" in str(exc)
    assert server.sent[model] < 16 * 1024 * 1024  # the client stopped reading early


def test_oversized_stream_and_oversized_event_are_refused(
    tmp_path: Path, server: FakeLLMServer, creds: dict[str, str]
) -> None:
    big, line = f"big:{BIG}", f"bigline:{BIG}"
    cfg = _config(tmp_path, server, "openai", [big, line], settings={"max_response_bytes": 4 << 20})
    # many small events: the first ones reach the caller, then the cap ends the stream
    exc = asyncio.run(_run(cfg, LLMRequest("hi", LLMConfig(f"p/{big}")), True))
    assert isinstance(exc, ProviderResponseError), exc
    assert "larger than max_response_bytes" in str(exc)
    # one endless line: refused at the per-line cap, before any chunk (so a target failure)
    exc = asyncio.run(_run(cfg, LLMRequest("hi", LLMConfig(f"p/{line}")), True))
    assert isinstance(exc, AllTargetsFailedError) and "streamed line is longer" in str(exc)
    assert server.sent[big] < 16 * 1024 * 1024 and server.sent[line] < 16 * 1024 * 1024


# -- item 12: streams that end early --------------------------------------------------------------


@pytest.mark.parametrize("ptype", ["openai", "anthropic"])
@pytest.mark.parametrize("first", ["json200", "cut:0"])
def test_stream_failing_before_its_first_chunk_falls_back(
    tmp_path: Path, server: FakeLLMServer, creds: dict[str, str], ptype: str, first: str
) -> None:
    routes = [{"name": "r", "targets": [{"model": f"p/{first}"}, {"model": "p/gpt-4o"}]}]
    cfg = _config(tmp_path, server, ptype, [first, "gpt-4o"], routes=routes)
    response, parts = asyncio.run(_run(cfg, LLMRequest("one two", LLMConfig("r")), True))
    assert "".join(parts) == "echo: one two"
    assert response.model_id == "gpt-4o"
    assert [a.outcome for a in response.attempts] == ["ProviderResponseError", "ok"]


@pytest.mark.parametrize("ptype", ["openai", "anthropic"])
def test_stream_cut_after_some_chunks_is_an_error_for_the_caller(
    tmp_path: Path, memory_url: str, server: FakeLLMServer, creds: dict[str, str], ptype: str
) -> None:
    cfg = _config(tmp_path, server, ptype, ["cut:2"])
    db = open_database(memory_url, upgrade=True)
    got: list[str] = []

    async def main() -> Exception:
        async with LLMGatewayClient(cfg, None, db.engine, usage_flush_interval=0.01) as client:
            try:
                async for text in client.generate_stream(
                    LLMRequest("a b c d", LLMConfig("p/cut:2"))
                ):
                    got.append(text)
            except ProviderResponseError as exc:
                return exc
        raise AssertionError("the cut stream should fail")

    exc = asyncio.run(main())
    assert "ended before" in str(exc) and got == ["echo: ", "a "]
    with db.engine.connect() as conn:
        outcomes = [r.outcome for r in conn.execute(select(UsageRecord.__table__))]
    db.dispose()
    assert outcomes == ["stream_error"]


def test_new_request_settings_leave_earlier_configurations_unchanged(tmp_path: Path) -> None:
    from runtime_servers import compile_docs

    plain = compile_docs([provider_doc("p", "mock", ["m"])])
    settings = plain.data["providers"][0]["request_settings"]
    assert "deadline_seconds" not in settings and "max_response_bytes" not in settings
    explicit = compile_docs(
        [provider_doc("p", "mock", ["m"], request_settings={"deadline_seconds": 120})]
    )
    assert explicit.content_hash == plain.content_hash  # the default, written out: same config
    tuned = compile_docs(
        [provider_doc("p", "mock", ["m"], request_settings={"deadline_seconds": 9})]
    )
    assert tuned.data["providers"][0]["request_settings"]["deadline_seconds"] == 9
    path = write_compiled(tmp_path / "c.json", [provider_doc("p", "mock", ["m"])])
    loaded = ConfigLoader(path).load_config_as_object().providers["p"].settings
    assert (loaded.deadline_seconds, loaded.max_response_bytes) == (120.0, 16 * 1024 * 1024)
