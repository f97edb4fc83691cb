"""Every check of ``gwconfig validate`` across a configuration (``manifests/checks.py``) holds for
the REST API too: a write that would leave a state no manifest could express is refused with a
422 problem naming the field, and nothing changes in the database.

The cases are keyed by the checks' messages, read from ``checks.py`` itself: a new check without
a case here fails :func:`test_every_check_has_a_rest_case`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet
from sqlalchemy import func, select

import gwconfig.manifests.checks as checks_module
from gwconfig.db.models import AuditEvent
from gwconfig.db.session import open_database
from gwconfig.reconcile import commands
from gwconfig.reconcile.plan import PlanOptions
from gwconfig.reconcile.state import read_state
from serve_helpers import ServedApp, make_token, serve_app


def _constants(node: ast.expr) -> list[str] | None:
    """The literal parts of a message (an f-string, a string, or ``"..." + ...``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return [str(v.value) for v in node.values if isinstance(v, ast.Constant)]
    if isinstance(node, ast.BinOp):
        return _constants(node.left)
    return None


def check_messages() -> list[str]:
    """Each message of ``checks.py`` as its literal parts joined by ``_`` (one per check)."""
    tree = ast.parse(Path(checks_module.__file__).read_text())
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        position = {"diag": 2, "Diagnostic": 3}.get(node.func.id)
        if position is None or len(node.args) <= position:
            continue
        parts = _constants(node.args[position])
        if parts:  # (a message passed on by a helper is found where it is written)
            out.append("_".join(p.strip() for p in parts if p.strip()))
    return sorted(set(out))


@dataclass(frozen=True)
class Case:
    """A write through the API that breaks a check: the request, the status and field."""

    send: Callable[[httpx.Client], httpx.Response]
    status: int = 422
    loc: str | None = None


def _provider(pid: str, **extra: Any) -> dict[str, Any]:
    return {"provider_id": pid, "provider_type": "openai", **extra}


KEY = {"key_value": "sk-test-key"}
ROUTES_ONLY = "routes are written by apply only (the API has no route endpoint)"
#: check -> its cases through the API, or why no API write can break it
CASES: dict[str, list[Case] | str] = {
    "unknown provider_type": [
        Case(lambda c: c.put("providers/a", json={"provider_type": "nosuch"}),
             loc="body.provider_type"),
    ],
    "duplicate model_id_(first at_)": [
        Case(lambda c: c.post("providers", json=_provider(
            "c", models=[{"model_id": "x"}, {"model_id": "x"}])), loc="body.models.1.model_id"),
    ],
    "max_tokens (_) is larger than context_window (_) of model": [
        Case(lambda c: c.put("providers/a/models/m1", json={"max_tokens": 999999}),
             loc="body.max_tokens"),
        Case(lambda c: c.post("providers/a/models", json={
            "model_id": "big", "context_window": 10, "max_tokens": 11}), loc="body.max_tokens"),
    ],
    # a warning of validate, not an error: the API stores the key too
    "API key_(environment_) expired on_UTC; the gateway never uses it": [
        Case(lambda c: c.post("providers/b/api-keys", json={
            **KEY, "name": "old", "expires_at": "2001-01-01T00:00:00Z"}), status=201),
    ],
    "duplicate_for environment_(first at_)": [
        Case(lambda c: c.post("providers", json=_provider(
            "c", api_key=KEY, api_keys=[KEY])), loc="body.api_keys.1"),
        Case(lambda c: c.post("providers", json=_provider("c", connection_parameters=[
            {"param_name": "p", "param_value": 1}, {"param_name": "p", "param_value": 2}])),
            loc="body.connection_parameters.1"),
    ],
    # the database's key answers first: the provider exists already
    "duplicate provider_id_: also defined at": [
        Case(lambda c: c.post("providers", json=_provider("a")), status=409),
    ],
    "alias_of_is already an alias of": [
        Case(lambda c: c.put("providers/b/models/n1", json={"aliases": ["a1"]}),
             loc="body.aliases"),
    ],
    "route_has the same name as a model alias": [
        Case(lambda c: c.put("providers/b/models/n1", json={"aliases": ["chat"]}),
             loc="gateway.routes.0.name"),
    ],
    "route_targets unknown provider": [
        Case(lambda c: c.delete("providers/b"), loc="gateway.routes.1.targets.0.model"),
    ],
    "route_targets unknown model_of provider": [
        Case(lambda c: c.delete("providers/a/models/m1"), loc="gateway.routes.0.targets.0.model"),
    ],
    "route_targets_, whose_is disabled": [
        Case(lambda c: c.put("providers/a/models/m1", json={"enabled": False}),
             loc="gateway.routes.0.targets.0.model"),
        Case(lambda c: c.put("providers/a", json={"enabled": False}),
             loc="gateway.routes.0.targets.0.model"),
    ],
    "connection.api_base refused:": [
        Case(lambda c: c.put("providers/a", json={
            "connection_params": {"api_base": "http://169.254.169.254/v1"}}),
            loc="body.connection_params.api_base"),
        Case(lambda c: c.post("providers", json=_provider(
            "c", connection_params={"api_base": "https://user:pw@example.com/v1"})),
            loc="body.connection_params.api_base"),
    ],
    # the API takes a credential header's value as a write-only secret, never as plain text
    "header_carries credentials: a plain value is not allowed": [
        Case(lambda c: c.post("providers", json=_provider(
            "h", connection_params={"headers": {"Authorization": "Bearer x"}})), status=201),
    ],
    "a second Gateway document (the first is at_:_)": ROUTES_ONLY,
    "duplicate route_(first at_)": ROUTES_ONLY,
    "route_falls back to unknown route": ROUTES_ONLY,
    "fallback cycle:": ROUTES_ONLY,
    "default_route_is not a route": ROUTES_ONLY,
}  # fmt: skip
MESSAGES = check_messages()


def test_every_check_has_a_rest_case() -> None:
    assert sorted(CASES) == MESSAGES, "a check of checks.py without a case here (or the reverse)"


@dataclass
class Gateway:
    """The module's server and its database."""

    served: ServedApp
    url: str
    token: str

    def snapshot(self) -> tuple[str, int]:
        """The state's hash and the number of audit rows."""
        db = open_database(self.url)
        try:
            with db.session() as s:
                audits = s.scalar(select(func.count()).select_from(AuditEvent)) or 0
                return read_state(s).state_hash, audits
        finally:
            db.dispose()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Providers a (m1 with alias a1, routed by 'chat') and b (n1, routed by 'spare'), applied."""
    tmp = tmp_path_factory.mktemp("checks")
    url = f"sqlite:///{tmp / 'gateway.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GWCONFIG_ENCRYPTION_KEY", Fernet.generate_key().decode())
        mp.chdir(tmp)
        open_database(url, upgrade=True).dispose()
        root = tmp / "providers.d"
        root.mkdir()
        docs = [
            {"apiVersion": "gwconfig/v1", "kind": "Provider", "provider_id": "a",
             "provider_type": "openai", "models": [
                 {"model_id": "m1", "context_window": 16000, "aliases": ["a1"]}]},
            {"apiVersion": "gwconfig/v1", "kind": "Provider", "provider_id": "b",
             "provider_type": "openai", "models": [{"model_id": "n1"}]},
            {"apiVersion": "gwconfig/v1", "kind": "Gateway", "routes": [
                {"name": "chat", "targets": [{"model": "a/m1"}]},
                {"name": "spare", "targets": [{"model": "b/n1"}]}]},
        ]  # fmt: skip
        (root / "all.yaml").write_text(yaml.safe_dump_all(docs))
        commands.apply(str(root), url, PlanOptions(), review=lambda _: True)
        token = make_token(url, "write", name="checks")
        with serve_app(url) as served:
            yield Gateway(served, url, token)


@pytest.mark.parametrize(
    ("message", "index"),
    [(m, i) for m in MESSAGES for i in range(len(CASES[m]) if isinstance(CASES[m], list) else 1)],
)
def test_each_check_through_the_api(gateway: Gateway, message: str, index: int) -> None:
    cases = CASES[message]
    if isinstance(cases, str):  # no API write reaches it: the API has no route endpoint
        paths = gateway.served.app.openapi()["paths"]
        assert not [p for p in paths if p.startswith("/api/v1") and "route" in p], cases
        return
    case = cases[index]
    before = gateway.snapshot()
    headers = {"Authorization": f"Bearer {gateway.token}"}
    with httpx.Client(base_url=f"{gateway.served.base_url}/api/v1/", headers=headers) as c:
        answer = case.send(c)
    assert answer.status_code == case.status, answer.text
    if case.status == 201:
        return  # validate only warns about it, or the API stores it as a secret
    assert gateway.snapshot() == before  # nothing written, nothing audited
    problem = answer.json()
    assert answer.headers["content-type"] == "application/problem+json"
    if case.loc is not None:
        pattern = ".*?".join(map(re.escape, message.split("_")))
        found = [e for e in problem["errors"] if re.search(pattern, e["msg"])]
        assert [e["loc"] for e in found] == [case.loc], problem
