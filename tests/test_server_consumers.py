"""Tokens of a consumer through a real ``gwconfig serve``: the consumer's model patterns and
rate hold, a change of its manifest holds after the reload, usage rows carry the consumer and
the cost, and the spend is seen in ``gwconfig consumers``, ``/api/v1/consumers`` and
``/metrics``."""

from __future__ import annotations

import json

import openai
import pytest
from sqlalchemy import create_engine, text

from conftest import gwconfig_in_process
from consumer_helpers import TEAM_A, TEAM_B, ConsumersGateway
from reconcile_helpers import apply

HELLO = [{"role": "user", "content": "hello there"}]
#: "hello there" is 2 prompt tokens, "echo: hello there" 3 completion tokens, at 2 and 10 USD
#: per million
HELLO_COST = 2 * 2e-6 + 3 * 10e-6


def test_a_consumers_token_may_call_only_the_consumers_models(
    consumers_gateway: ConsumersGateway,
) -> None:
    client = consumers_gateway.openai("a")
    for model in ("main", "ok-alias", "up/gpt-ok"):  # the alias stands for the model it names
        answer = client.chat.completions.create(model=model, messages=HELLO)  # type: ignore[arg-type]
        assert answer.choices[0].message.content == "echo: hello there"
    for model in ("other", "up/gpt-no"):
        with pytest.raises(openai.PermissionDeniedError) as exc:
            client.chat.completions.create(model=model, messages=HELLO)  # type: ignore[arg-type]
        assert exc.value.code == "model_not_allowed" and model in str(exc.value)
    listed = {m.id for m in client.models.list()}
    assert {"main", "ok-alias", "up/gpt-ok"} <= listed
    assert not {"other", "up/gpt-no"} & listed
    # a token without a consumer keeps its own (here: every model)
    plain = consumers_gateway.openai("plain")
    assert plain.chat.completions.create(model="other", messages=HELLO).choices  # type: ignore[arg-type]


def test_a_consumers_rate_holds_over_its_tokens(consumers_gateway: ConsumersGateway) -> None:
    client = consumers_gateway.openai("b")
    for _ in range(2):
        client.chat.completions.create(model="up/gpt-no", messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="up/gpt-no", messages=HELLO)  # type: ignore[arg-type]
    assert "consumer 'team-b' is limited to 2 requests per minute" in str(exc.value)
    assert exc.value.response.headers.get("retry-after")


def test_a_change_of_the_consumer_holds_after_the_reload(
    consumers_gateway: ConsumersGateway,
) -> None:
    gw = consumers_gateway
    client = gw.openai("a")
    assert client.chat.completions.create(model="main", messages=HELLO).choices  # type: ignore[arg-type]
    (gw.root / "consumers.yaml").write_text(
        TEAM_A.replace("[main, ok-alias, up/gpt-solo]", "[other]") + "---\n" + TEAM_B
    )
    apply(gw.root, gw.url)
    gw.served_when(lambda config: config.consumers["team-a"].models == ("other",))
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="main", messages=HELLO)  # type: ignore[arg-type]
    assert client.chat.completions.create(model="other", messages=HELLO).choices  # type: ignore[arg-type]
    # a consumer removed from the manifests: its tokens may call nothing
    (gw.root / "consumers.yaml").write_text(TEAM_B)
    apply(gw.root, gw.url, prune=True)
    gw.served_when(lambda config: "team-a" not in config.consumers)
    with pytest.raises(openai.PermissionDeniedError) as exc:
        client.chat.completions.create(model="other", messages=HELLO)  # type: ignore[arg-type]
    assert exc.value.code == "consumer_not_found"


def test_usage_rows_carry_the_consumer_and_the_cost(consumers_gateway: ConsumersGateway) -> None:
    gw = consumers_gateway
    gw.openai("a").chat.completions.create(model="main", messages=HELLO)  # type: ignore[arg-type]
    gw.openai("plain").chat.completions.create(model="main", messages=HELLO)  # type: ignore[arg-type]
    gw.flush_usage()
    engine = create_engine(gw.url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT token_name, consumer, cost_usd FROM usage_records ORDER BY token_name"
            )).all()  # fmt: skip
    finally:
        engine.dispose()
    assert [(r[0], r[1]) for r in rows] == [("plain", None), ("tok-a", "team-a")]
    assert [float(r[2]) for r in rows] == [pytest.approx(HELLO_COST)] * 2


def test_spend_is_seen_in_the_cli_the_rest_api_and_the_metrics(
    consumers_gateway: ConsumersGateway,
) -> None:
    gw = consumers_gateway
    for _ in range(3):
        gw.openai("a").chat.completions.create(model="main", messages=HELLO)  # type: ignore[arg-type]
    gw.flush_usage()
    env = {"GWCONFIG_DATABASE_URL": gw.url}
    listed = gwconfig_in_process(["consumers", "--format", "json"], gw.root, env)
    assert listed.returncode == 0, listed.stderr
    report = {c["name"]: c for c in json.loads(listed.stdout)}
    assert report["team-a"]["spend_usd"] == pytest.approx(3 * HELLO_COST)
    assert report["team-a"]["remaining_usd"] == pytest.approx(5 - 3 * HELLO_COST)
    assert report["team-a"]["budget"] == {"usd": 5.0, "period": "day"}
    assert report["team-a"]["limits"] == {"rpm": 1000}
    assert report["team-b"]["remaining_usd"] is None and report["team-b"]["spend_usd"] == 0
    table = gwconfig_in_process(["consumers"], gw.root, env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAME", "RPM", "TPM", "BUDGET", "PERIOD", "SPENT", "LEFT", "MODELS"]
    assert lines[1].split() == ["team-a", "1000", "-", "$5.0000", "day", "$0.0001", "$4.9999",
                                "main,", "ok-alias,", "up/gpt-solo"]  # fmt: skip
    assert lines[2].split() == ["team-b", "2", "-", "-", "day", "$0.0000", "-", "up/*"]

    with gw.served.client(gw.tokens["read"]) as http:
        page = http.get("/api/v1/consumers", params={"limit": 1})
        assert page.status_code == 200, page.text
        body = page.json()
        assert [c["name"] for c in body["items"]] == ["team-a"]
        assert body["items"][0] == report["team-a"]
        rest = http.get(body["next"]).json()
        assert [c["name"] for c in rest["items"]] == ["team-b"] and rest["next"] is None
        bad = http.get("/api/v1/consumers", params={"cursor": "not-a-cursor"})
        assert bad.status_code == 422
        metrics = http.get("/metrics").text
    with gw.served.client(gw.tokens["a"]) as http:  # invoke may not read the REST API
        assert http.get("/api/v1/consumers").status_code == 403
    assert 'gwconfig_consumer_spend_usd{consumer="team-a",period="day"}' in metrics
    assert _value(metrics, "gwconfig_consumer_spend_usd", "team-a") == pytest.approx(3 * HELLO_COST)
    assert _value(metrics, "gwconfig_consumer_budget_remaining_usd", "team-a") == pytest.approx(
        5 - 3 * HELLO_COST
    )
    assert _value(metrics, "gwconfig_consumer_spend_usd", "team-b") == 0.0
    assert _value(metrics, "gwconfig_consumer_budget_remaining_usd", "team-b") is None


def _value(metrics: str, name: str, consumer: str) -> float | None:
    """The value of gauge ``name`` for ``consumer`` in a text exposition (None: absent)."""
    for line in metrics.splitlines():
        if line.startswith(name + "{") and f'consumer="{consumer}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_tokens_for_consumers_are_checked_and_listed(consumers_gateway: ConsumersGateway) -> None:
    gw = consumers_gateway
    env = {"GWCONFIG_DATABASE_URL": gw.url}
    unknown = gwconfig_in_process(
        ["tokens", "create", "x", "--scope", "invoke", "--consumer", "team-z"], gw.root, env
    )
    assert unknown.returncode != 0 and "internal error" not in unknown.stderr
    assert "no consumer named 'team-z'" in unknown.stderr and "team-a" in unknown.stderr
    own = gwconfig_in_process(
        ["tokens", "create", "y", "--scope", "invoke", "--consumer", "team-a", "--rpm", "5"],
        gw.root, env,
    )  # fmt: skip
    assert own.returncode != 0 and "inherits its models and limits" in own.stderr
    listed = gwconfig_in_process(["tokens", "list", "--format", "json"], gw.root, env)
    consumers = {t["name"]: t["consumer"] for t in json.loads(listed.stdout)}
    assert consumers == {
        "tok-a": "team-a", "tok-b": "team-b", "plain": None, "reader": None, "operator": None,
    }  # fmt: skip
    table = gwconfig_in_process(["tokens", "list"], gw.root, env).stdout.splitlines()
    assert table[0].split()[-1] == "CONSUMER"
    assert [line.split()[-1] for line in table[1:]] == ["-", "-", "-", "team-a", "team-b"]


def test_a_rest_write_that_breaks_a_consumer_is_refused(
    consumers_gateway: ConsumersGateway,
) -> None:
    gw = consumers_gateway
    with gw.served.client(gw.tokens["admin"]) as http:
        refused = http.delete("/api/v1/providers/up/models/gpt-solo")
        assert refused.status_code == 422, refused.text
        problem = refused.json()
        assert "consumer 'team-a' names unknown model 'up/gpt-solo'" in problem["detail"]
        assert [e["loc"] for e in problem["errors"]] == ["consumers.team-a.models.2"]
        assert http.get("/api/v1/providers/up/models/gpt-solo").status_code == 200
        # a write that leaves every consumer valid goes in
        renamed = http.put("/api/v1/providers/up/models/gpt-solo", json={"display_name": "Solo"})
        assert renamed.status_code == 200, renamed.text
