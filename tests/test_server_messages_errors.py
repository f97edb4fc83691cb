"""``/v1/messages`` authentication, bad bodies, ``count_tokens`` and metrics: every error in
Anthropic's shape (never a problem document), the field named."""

from __future__ import annotations

import os
from typing import Any

import anthropic
import pytest

from messages_helpers import Served, error_of
from serve_helpers import make_token

HELLO: dict[str, Any] = {
    "model": "up/gpt-tools",
    "max_tokens": 20,
    "messages": [{"role": "user", "content": "hello"}],
}


def test_the_token_is_taken_from_x_api_key_or_a_bearer_header(served: Served) -> None:
    by_key = served.anthropic().messages.create(**HELLO)
    by_bearer = served.anthropic(api_key=None, auth_token=served.token).messages.create(**HELLO)
    assert by_key.content == by_bearer.content
    headers = [h for _, h, _ in served.upstream.requests]
    # the gateway's token goes no further: the upstream sees the provider's key
    assert all(served.token not in str(h) for h in headers)
    no_version = served.post("/v1/messages", HELLO)
    assert no_version.status_code == 200 and no_version.json()["type"] == "message"


def test_a_wrong_or_missing_token_is_an_anthropic_authentication_error(served: Served) -> None:
    with pytest.raises(anthropic.AuthenticationError) as exc:
        served.anthropic(api_key="gw_not-a-token").messages.create(**HELLO)
    assert exc.value.status_code == 401
    assert exc.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    response = served.post("/v1/messages", HELLO, **{"x-api-key": ""})
    assert response.status_code == 401
    assert error_of(response)["type"] == "authentication_error"
    assert served.upstream.requests == []


def test_scope_model_patterns_and_rate_are_the_tokens(served: Served) -> None:
    read = make_token(served.url, "read")
    response = served.post("/v1/messages", HELLO, **{"x-api-key": read})
    assert response.status_code == 403 and error_of(response)["type"] == "permission_error"
    only_claude = make_token(served.url, "invoke", models=["claude/*"])
    response = served.post("/v1/messages", HELLO, **{"x-api-key": only_claude})
    assert response.status_code == 403
    assert "may not use model 'up/gpt-tools'" in error_of(response)["message"]
    slow = make_token(served.url, "invoke", rpm=1)
    assert served.post("/v1/messages", HELLO, **{"x-api-key": slow}).status_code == 200
    response = served.post("/v1/messages", HELLO, **{"x-api-key": slow})
    assert response.status_code == 429 and error_of(response)["type"] == "rate_limit_error"
    assert int(response.headers["retry-after"]) >= 1


#: each bad body and the field its 400 names
BAD_BODIES: list[tuple[dict[str, Any], str]] = [
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]},
         "messages[0].content[0].text"),
        ({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
         "messages[0].content[0].source"),
        ({"messages": [{"role": "user", "content": [
            {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]},
         "messages[0].content[0].type"),
        ({"system": [{"type": "image"}]}, "system[0]"),
        ({"tools": [{"name": "f"}]}, "tools[0].input_schema"),
        ({"tools": [{"name": "f", "input_schema": {}}] * 129}, "tools"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        ({"tool_choice": {"type": "tool"}}, "tool_choice.name"),
        ({"stop_sequences": "END"}, "stop_sequences"),
        ({"temperature": 3}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"metadata": {"user_id": 7}}, "metadata.user_id"),
        ({"thinking": {"type": "enabled", "budget_tokens": 10}}, "thinking.budget_tokens"),
        ({"stream": "yes"}, "stream"),
        ({"model": ""}, "model"),
        ({"next_years_field": "x" * 70_000}, "next_years_field"),
]  # fmt: skip


def test_a_bad_body_is_a_400_naming_the_field(served: Served) -> None:
    """Every case against one served gateway (a gateway each would cost more than the case)."""
    for change, named in BAD_BODIES:
        body = {**HELLO, **change}
        body = {k: v for k, v in body.items() if v is not None}
        response = served.post("/v1/messages", body)
        assert response.status_code == 400, (change, response.text)
        error = error_of(response)
        assert error["type"] == "invalid_request_error", change
        assert named in error["message"], (named, error["message"])
    assert served.upstream.requests == []


def test_a_body_that_is_not_json_and_other_paths_and_methods(served: Served) -> None:
    response = served.post("/v1/messages", b"{not json")
    assert response.status_code == 400 and "not valid JSON" in error_of(response)["message"]
    response = served.post("/v1/messages/batches", HELLO)
    assert response.status_code == 404 and error_of(response)["type"] == "not_found_error"
    with served.app.client(served.token) as client:
        response = client.get("/v1/messages")
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert error_of(response)["type"] == "invalid_request_error"
    with pytest.raises(anthropic.NotFoundError) as exc:
        served.anthropic().messages.create(**{**HELLO, "model": "no-such-model"})
    assert exc.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_count_tokens_is_forwarded_for_anthropic_models_and_refused_elsewhere(
    served: Served,
) -> None:
    client = served.anthropic()
    counted = client.messages.count_tokens(
        model="claude/sonnet", system="be brief",
        messages=[{"role": "user", "content": "one two three"}],
    )  # fmt: skip
    assert counted.input_tokens == 3
    path, sent = served.last()
    assert path == "/v1/messages/count_tokens"
    assert sent == {
        "model": "sonnet", "system": "be brief",
        "messages": [{"role": "user", "content": "one two three"}],
    }  # fmt: skip
    served.upstream.reset()
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.count_tokens(
            model="up/gpt-tools", messages=[{"role": "user", "content": "x"}]
        )
    assert "provider type 'openai'" in exc.value.message
    assert exc.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert served.upstream.requests == []
    response = served.post("/v1/messages/count_tokens", {"model": "claude/sonnet", "messages": "x"})
    assert response.status_code == 400 and "messages" in error_of(response)["message"]


def test_metrics_count_the_messages_endpoints_apart(served: Served) -> None:
    served.anthropic().messages.create(**HELLO)
    served.post("/v1/messages", {**HELLO, "max_tokens": 0})
    served.anthropic().messages.count_tokens(
        model="claude/sonnet", messages=[{"role": "user", "content": "x"}]
    )
    with served.app.client(served.token) as client:
        text = client.get("/metrics").text
    lines = [line for line in text.splitlines() if line.startswith("gwconfig_requests_total{")]
    assert any('endpoint="/v1/messages"' in x and 'status="200"' in x for x in lines)
    assert any('endpoint="/v1/messages"' in x and 'status="400"' in x for x in lines)
    assert any('endpoint="/v1/messages/count_tokens"' in x for x in lines)


def test_a_stream_that_breaks_ends_with_an_error_event(served: Served) -> None:
    words = [{"role": "user", "content": "one two three four"}]
    events = served.events({**HELLO, "model": "up/break", "stream": True, "messages": words})
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"] and names[-1] == "error"
    assert "message_stop" not in names
    error = events[-1][1]
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert "upstream broke" in error["error"]["message"]


def test_upstream_errors_echoing_the_key_are_scrubbed(served: Served) -> None:
    key = os.environ["UP_KEY"]
    # an error event before any text: the answer still has its status
    streamed = served.post("/v1/messages", {**HELLO, "model": "up/leak:stream", "stream": True})
    assert streamed.status_code == 502 and error_of(streamed)["type"] == "api_error"
    assert key not in streamed.text and key[:14] not in streamed.text
    response = served.post("/v1/messages", {**HELLO, "model": "up/leak:json"})
    assert response.status_code == 502 and error_of(response)["type"] == "api_error"
    assert key not in response.text
