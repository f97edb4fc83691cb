"""Schemathesis over the live server's /openapi.json (REST API operations, a write token):
no 500, and every response conforms to the schema (status code, content type, headers, body).

Bounded: a fixed number of examples per operation, derandomized, so the run is repeatable.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import checks
from sqlalchemy.engine import make_url

from gwconfig.db.session import open_database
from serve_helpers import ServedApp, make_token, serve_app

#: examples per operation: the full run on SQLite, a shorter one on each server engine
EXAMPLES = {"sqlite": 25, "postgresql": 10, "mysql": 10}
#: what is checked: no 500, and responses as the schema says (status, type, headers, body);
#: not "every schema-valid body is accepted" (the manifest schema is stricter than OpenAPI says)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture
def served(db_url: str, fernet_key: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedApp]:
    """A server on a fresh database of each engine, with its encryption key."""
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    open_database(db_url, upgrade=True).dispose()
    with serve_app(db_url) as app:
        yield app


def test_no_500_and_responses_match_the_schema(served: ServedApp, db_url: str) -> None:
    token = make_token(db_url, "write", name="schemathesis")
    headers = {"Authorization": f"Bearer {token}"}
    with served.client(token) as http:
        created = http.post(
            "/api/v1/providers",
            json={"provider_id": "openai", "provider_type": "openai",
                  "models": [{"model_id": "a/b:c"}], "api_key": {"key_value": "sk-x-123"}},
        )  # fmt: skip
        assert created.status_code == 201, created.text
    schema = schemathesis.openapi.from_url(f"{served.base_url}/openapi.json", headers=headers)
    schema = schema.include(path_regex=r"^/api/v1/(providers|revisions)")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    failures: list[str] = []
    statuses: set[int] = set()
    for operation in operations:

        @given(case=operation.as_strategy(), data=st.data())
        @settings(
            max_examples=EXAMPLES[make_url(db_url).get_backend_name()],
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case, data: st.DataObject) -> None:
            if "provider_id" in (case.path_parameters or {}) and data.draw(st.booleans()):
                case.path_parameters["provider_id"] = "openai"  # reach existing resources too
            try:
                response = case.call_and_validate(
                    base_url=served.base_url, headers=headers, checks=CHECKS
                )
                statuses.add(response.status_code)
            except Exception as exc:  # schemathesis' failures: collected, all shown at the end
                failures.append(f"{case.operation.label}: {str(exc)[:2000]}")

        run()
    assert failures == []
    assert {200, 404, 422} <= statuses  # it did reach the handlers, not only the validation
