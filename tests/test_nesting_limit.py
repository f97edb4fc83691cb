"""One nesting limit everywhere (``manifests.limits.MAX_DEPTH``, 64 levels of a document): what
``validate`` accepts, the REST API, the seed service and ``import`` accept; deeper data is refused
with 422 at the field (REST), or a clear error naming the provider, row and field (import),
never a 500 or 503; data 10,000 levels deep is refused the same way (no recursion anywhere).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from backoffice_helpers import execute, import_fails
from gwconfig.cli import cli
from gwconfig.db.session import open_database
from gwconfig.errors import ValidationFailed
from gwconfig.manifests.limits import (
    DEPTH_MESSAGE,
    MARIADB_JSON_DEPTH,
    MAX_DEPTH,
    MODEL_PARAMETERS_DEPTH,
)
from gwconfig.reconcile import commands
from gwconfig.reconcile.plan import PlanOptions
from gwconfig.seed.service import ProviderService
from serve_helpers import make_token, serve_app

#: the largest chain of dicts under a model's ``parameters`` that a manifest can hold: the
#: parameters mapping is at level 3, the chain's k-th mapping at 3 + k, its scalar at 4 + k
FITS = MAX_DEPTH - MODEL_PARAMETERS_DEPTH - 1
VERY_DEEP = 10_000


def chain(k: int) -> Any:
    """``{"a": {"a": ... 1}}``: ``k`` mappings, built without recursion."""
    value: Any = 1
    for _ in range(k):
        value = {"a": value}
    return value


def chain_json(k: int) -> str:
    """:func:`chain` as JSON text (the json module would recurse to write it)."""
    return '{"a": ' * k + "1" + "}" * k


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _manifest(parameters: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "gwconfig/v1", "kind": "Provider", "provider_id": "openai",
            "provider_type": "openai",
            "models": [{"model_id": "fake-chat", "parameters": parameters}]}  # fmt: skip


@pytest.fixture
def gw_url(db_url: str, fernet_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database of each engine with provider openai (model fake-chat) applied."""
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.chdir(tmp_path)
    open_database(db_url, upgrade=True).dispose()
    root = tmp_path / "providers.d"
    root.mkdir()
    (root / "openai.yaml").write_text(yaml.safe_dump(_manifest({})))
    commands.apply(str(root), db_url, PlanOptions(), review=lambda _: True)
    return db_url


def test_validate_draws_the_line_where_the_writers_do(tmp_path: Path) -> None:
    for k, ok in ((FITS, True), (FITS + 1, False)):
        root = tmp_path / f"k{k}"
        root.mkdir()
        (root / "p.yaml").write_text(yaml.safe_dump(_manifest({"p": chain(k)})))
        res = run("validate", str(root))
        assert (res.exit_code == 0) is ok, res.output
        assert (DEPTH_MESSAGE in res.output) is not ok


def test_rest_refuses_deeper_data_at_the_field(gw_url: str, tmp_path: Path) -> None:
    token = make_token(gw_url, "write", name="deep")
    model = "/api/v1/providers/openai/models/fake-chat"
    with serve_app(gw_url) as served, served.client(token) as client:
        etag = client.get(model).headers["etag"]
        for k, where in ((FITS + 1, None), (VERY_DEEP, "body")):
            body = '{"parameters": {"p": ' + chain_json(k) + "}}"
            answer = client.put(model, content=body, headers={"content-type": "application/json"})
            assert answer.status_code == 422, answer.text
            (error,) = answer.json()["errors"]
            assert error["msg"] == DEPTH_MESSAGE
            if where is None:  # the field: parameters.p.a.a... down to the value over the limit
                assert error["loc"] == ".".join(["body", "parameters", "p", *["a"] * (FITS + 1)])
            else:
                assert error["loc"] == where
        created = client.post(
            "/api/v1/providers",
            json={"provider_id": "other", "provider_type": "openai",
                  "models": [{"model_id": "m", "parameters": {"p": chain(FITS + 1)}}]},
        )  # fmt: skip
        assert created.status_code == 422, created.text
        assert created.json()["errors"][0]["loc"].startswith("body.models.0.parameters.p.a")
        assert client.get(model).headers["etag"] == etag  # nothing changed
        assert client.get("/api/v1/providers/other").status_code == 404
        storable = FITS
        if "mysql" in gw_url:  # MariaDB's JSON columns hold fewer levels: refused, not a 503
            storable = MARIADB_JSON_DEPTH - 2  # in the audit row: the model, its parameters
            answer = client.put(model, json={"parameters": {"p": chain(FITS)}})
            assert answer.status_code == 422, answer.text
            assert "MariaDB" in answer.json()["errors"][0]["msg"]
        fits = client.put(model, json={"parameters": {"p": chain(storable)}})
        assert fits.status_code == 200, fits.text
    # what the API took, dump writes as a manifest that validate accepts
    out = tmp_path / "dumped"
    res = run("dump", "--database-url", gw_url, "--out", str(out), "--secrets", "env")
    assert res.exit_code == 0, res.output
    assert run("validate", str(out)).exit_code == 0


def test_seed_service_refuses_deeper_data(gw_url: str) -> None:
    db = open_database(gw_url)
    try:
        with db.session() as session:
            service = ProviderService(session, os.environ["GWCONFIG_ENCRYPTION_KEY"], "seed")
            for k in (FITS + 1, VERY_DEEP):
                with pytest.raises(ValidationFailed) as caught:
                    service.update_model("openai", "fake-chat", {"parameters": {"p": chain(k)}})
                assert DEPTH_MESSAGE in caught.value.message
            assert service.get_models_by_provider_id("openai")[0]["parameters"] == {}
    finally:
        db.dispose()


def test_import_names_the_row_and_field(backoffice: Any) -> None:
    url, _, _ = backoffice
    for k in (FITS + 1, VERY_DEEP):
        text = '{"p": ' + chain_json(k) + "}"
        execute(url, "UPDATE provider_models SET parameters = :p WHERE id = 900001", p=text)
        out = import_fails(url)
        assert "provider_models row id=900001" in out and DEPTH_MESSAGE in out, out
        assert "parameters" in out and "nothing was written" in out, out
        if k == FITS + 1:  # read, then checked as validate checks it: the provider is named
            assert "provider 'edge-bo'" in out, out


def test_rows_written_behind_gwconfigs_back_are_a_clear_error(gw_url: str, tmp_path: Path) -> None:
    if "mysql" in gw_url:
        pytest.skip("MariaDB's JSON columns refuse data nested this deep (JSON_VALID)")
    for k, says in ((FITS + 1, "parameters.p.a.a.a.a.a..."), (VERY_DEEP, "cannot be read")):
        execute(
            gw_url,
            "UPDATE provider_models SET parameters = :p WHERE model_id = 'fake-chat'",
            p='{"p": ' + chain_json(k) + "}",
        )
        out = tmp_path / f"dumped-{k}"
        res = run("dump", "--database-url", gw_url, "--out", str(out), "--secrets", "env")
        assert res.exit_code == 1 and "Traceback" not in res.output, res.output
        assert says in res.output and not out.exists(), res.output
        if k == FITS + 1:
            assert "provider 'openai', model 'fake-chat'" in res.output
            assert DEPTH_MESSAGE in res.output
