"""``gwconfig serve``: a ``write`` token cannot send a provider's key to a new ``api_base``.

Two recording upstreams: the manifests point provider ``up`` at the first; a ``write`` token
moves ``api_base`` to the second. The key is not sent there (the second upstream records no
request, the OpenAI endpoint answers 502 ``key_origin_mismatch`` naming the provider and both
origins) until an ``admin`` token writes the key again, or ``apply`` binds it from manifests.
REST writes of an ``api_base`` outside the egress rules are 422 problems naming the field.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from builders import write_manifests
from gateways import Gateway, GatewayFor, manifests
from gwconfig.runtime.config.sources import ConfigLoader
from gwconfig.secrets.origin import origin_of
from reconcile_helpers import apply
from runtime_servers import FakeLLMServer
from serve_helpers import make_token

BOUND = 60.0  # a safety net: the runtime tells when it reloads
MSG = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def second() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer().start()
    yield server
    server.stop()


@pytest.fixture
def gateway(
    sqlite_url: str, gateway_for: GatewayFor, module_server: FakeLLMServer, second: FakeLLMServer
) -> Iterator[Gateway]:
    module_server.reset()
    second.reset()
    with gateway_for(sqlite_url, module_server) as served:
        yield served


def served_provider(gateway: Gateway) -> Any:
    """The provider ``up`` as the server serves it now."""
    runtime = gateway.served.state.runtime
    assert runtime is not None
    return runtime.client.config.providers["up"]


def served_when(gateway: Gateway, ready: Callable[[Any], bool]) -> None:
    """Wait (bounded) until the configuration the server serves satisfies ``ready``."""
    runtime = gateway.served.state.runtime
    assert runtime is not None
    changed = threading.Event()
    runtime.on_reload.append(changed.set)
    deadline = time.monotonic() + BOUND
    while True:
        changed.clear()
        if ready(runtime.client.config.providers["up"]):
            return
        remaining = deadline - time.monotonic()
        assert remaining > 0, "the server did not load the change"
        changed.wait(remaining)


def sendable(pc: Any) -> bool:
    """The served provider has its key, and no secret bound to another origin."""
    return bool(pc.api_keys) and not pc.origin_errors


def held_back(pc: Any) -> bool:
    """The served provider holds a secret bound to another origin."""
    return bool(pc.origin_errors)


def move(gateway: Gateway, token: str, api_base: str) -> httpx.Response:
    with gateway.served.client(token) as http:
        body = {"connection_params": {"api_base": api_base}}
        return http.put("/api/v1/providers/up", json=body)


def rewrite_key(gateway: Gateway, token: str) -> None:
    """Delete the key and store the same value again, with ``token``."""
    with gateway.served.client(token) as http:
        assert http.delete("/api/v1/providers/up/api-keys/default").status_code == 200
        created = http.post(
            "/api/v1/providers/up/api-keys", json={"key_value": os.environ["UP_KEY"]}
        )
        assert created.status_code == 201, created.text


def refused(gateway: Gateway, first: FakeLLMServer, second: FakeLLMServer) -> None:
    """The next completion is a 502 ``key_origin_mismatch``; nothing reached ``second``."""
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.openai().chat.completions.create(model="up/gpt-ok", messages=MSG)  # type: ignore[arg-type]
    assert caught.value.status_code == 502
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "key_origin_mismatch"
    message = error["message"]
    assert "provider 'up'" in message
    assert origin_of(first.base_url) in message and origin_of(second.base_url) in message
    assert "not called" in message and "written again" in message
    assert os.environ["UP_KEY"] not in message
    assert second.requests == []


def answered_by(gateway: Gateway, upstream: FakeLLMServer) -> None:
    """The next completion reaches ``upstream`` with the key."""
    upstream.reset()
    answer = gateway.openai().chat.completions.create(model="up/gpt-ok", messages=MSG)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "echo: hello"
    [(_, headers, _)] = upstream.requests
    assert headers["authorization"] == f"Bearer {os.environ['UP_KEY']}"


def test_a_write_token_moves_api_base_but_not_the_key_an_admin_rebinds_it(
    gateway: Gateway, module_server: FakeLLMServer, second: FakeLLMServer
) -> None:
    writer = make_token(gateway.url, "write")
    assert move(gateway, writer, second.base_url + "/v1").status_code == 200
    served_when(gateway, lambda pc: pc.api_base == second.base_url + "/v1" and held_back(pc))
    refused(gateway, module_server, second)
    # the same value written again by a write token stays bound to the first origin
    before = served_provider(gateway)
    rewrite_key(gateway, writer)
    served_when(gateway, lambda pc: pc is not before and held_back(pc))  # after the POST
    refused(gateway, module_server, second)
    # an admin writes the key for the new origin
    rewrite_key(gateway, make_token(gateway.url, "admin"))
    served_when(gateway, sendable)
    answered_by(gateway, second)
    assert module_server.requests == []


def test_apply_from_manifests_binds_the_key_to_the_manifest_origin(
    gateway: Gateway, module_server: FakeLLMServer, second: FakeLLMServer
) -> None:
    writer = make_token(gateway.url, "write")
    assert move(gateway, writer, second.base_url + "/v1").status_code == 200
    served_when(gateway, lambda pc: pc.api_base == second.base_url + "/v1" and held_back(pc))
    refused(gateway, module_server, second)
    # a runtime reading the configuration over HTTP holds the key back too
    runtime_token = make_token(gateway.url, "runtime")
    remote = ConfigLoader(gateway.served.base_url + "/api/v1", token=runtime_token)
    pc = remote.load_config_as_object().providers["up"]
    assert pc.api_keys == () and "provider 'up'" in pc.origin_errors[0]
    # the manifests now say the same: the plan has no change, apply binds the key all the same
    apply(write_manifests(gateway.root, *manifests(second)), gateway.url)
    served_when(gateway, sendable)
    answered_by(gateway, second)


@pytest.mark.parametrize(
    ("api_base", "why"),
    [
        ("http://169.254.169.254/latest", "cloud metadata endpoint"),
        ("http://[fe80::1]:8080/v1", "link-local"),
        ("http://2852039166/v1", "cloud metadata endpoint"),
        ("https://user:secret@api.example.com/v1", "credentials"),
    ],
)
def test_rest_refuses_an_api_base_outside_the_rules(
    gateway: Gateway, api_base: str, why: str
) -> None:
    writer = make_token(gateway.url, "write")
    before = gateway.served.client(writer).get("/api/v1/providers/up").json()
    answer = move(gateway, writer, api_base)
    assert answer.status_code == 422
    problem = answer.json()
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "connection_params.api_base" in problem["detail"] and why in problem["detail"]
    assert "secret" not in problem["detail"].replace("a secret", "")
    after = gateway.served.client(writer).get("/api/v1/providers/up").json()
    assert after["connection_params"] == before["connection_params"]


def test_rest_follows_the_applied_egress_policy(
    gateway: Gateway, module_server: FakeLLMServer
) -> None:
    docs = manifests(module_server)
    docs[-1]["egress"] = {"allow": ["127.0.0.1", "*.example.com"]}
    apply(write_manifests(gateway.root, *docs), gateway.url)
    admin = make_token(gateway.url, "admin")
    outside = move(gateway, admin, "https://api.example.org/v1")
    assert outside.status_code == 422
    assert "egress policy" in outside.json()["detail"]
    assert move(gateway, admin, "https://llm.example.com/v1").status_code == 200
    created = gateway.served.client(admin).post(
        "/api/v1/providers",
        json={"provider_id": "other", "provider_type": "openai",
              "connection_params": {"api_base": "http://10.1.2.3/v1"}},
    )  # fmt: skip
    assert created.status_code == 422, created.text


def test_the_wire_code_is_key_origin_mismatch_only_when_every_target_was_held_back() -> None:
    from gwconfig.runtime.errors import AllTargetsFailedError, TargetFailure
    from gwconfig.server.openai.wire import wire_error

    held = TargetFailure("up/m", "bound elsewhere", 0, None, "key_origin_mismatch")
    failed = TargetFailure("other/m", "HTTP 500", 1, 500)
    only = wire_error(AllTargetsFailedError("r", [held, held]))
    assert (only.status, only.code) == (502, "key_origin_mismatch")
    mixed = wire_error(AllTargetsFailedError("r", [held, failed]))
    assert (mixed.status, mixed.code) == (502, "upstream_failed")
