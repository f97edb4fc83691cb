"""The back-office reader and ``gwconfig import`` on bad input: every problem is a clear error
(exit 1, the row or mapping line named, no traceback) and no output directory is left; a mapping
file renames tables and columns; legacy encrypted keys open with GWCONFIG_LEGACY_KEY or a hook."""

from __future__ import annotations

import hashlib
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.fernet import Fernet

from backoffice_helpers import execute, import_fails, run


def test_reader_counts_names_and_warnings(backoffice: Any) -> None:
    from gwconfig.adopt.backoffice import read_backoffice
    from gwconfig.entities import SecretScope

    url, keys, _ = backoffice
    bo = read_backoffice(url)
    assert (bo.counts.providers, bo.counts.keys, bo.counts.expired_keys) == (155, 157, 1)
    edge = next(p for p in bo.data["providers"] if p["provider_id"] == "edge-bo")
    assert [(k["name"], k["environment"]) for k in edge["api_keys"]] == [
        ("default", "production"), ("default", "staging"), ("key-2", "production"),
    ]  # fmt: skip
    # unnamed keys in creation order: the older plaintext one is default, the encrypted key-2
    assert (
        bo.secrets[SecretScope("edge-bo", "key", "default", "production")]
        == (keys["edge-bo/default"])
    )
    assert bo.secrets[SecretScope("edge-bo", "key", "key-2", "production")] == keys["edge-bo/key-2"]
    params = {(c["name"], c["environment"]): c["value"] for c in edge["connection_parameters"]}
    assert params[("temperature", "production")] == 1.0 and params[("beta", "development")] is True
    assert params[("blob", "development")] == '{"a": 1}'
    assert params[("organization", "default")] == "org-1"
    assert edge["enabled"] is False and edge["display_name"] == "edge-bo"
    assert edge["request_settings"]["timeout_seconds"] == 30.0
    joined = "\n".join(bo.warnings)
    assert "(api_keys row id=900003): key 'default' expired at" in joined
    assert "request_settings.circuit_breaker has no place in schema v1" in joined
    assert "connection_params.extra is structured" in joined
    for value in keys.values():
        assert value not in repr(bo) and value not in joined


def test_read_only_sqlite_file_unchanged(backoffice: Any, tmp_path: Path) -> None:
    url, _, _ = backoffice
    before = hashlib.sha256((tmp_path / "bo.db").read_bytes()).hexdigest()
    res = run("import", "--from-url", url, "--secrets", "env", "--out", "out.d")
    assert res.exit_code == 0, res.output
    res = run("verify", "--against", url, "--database-url", f"sqlite:///{tmp_path / 'gw.db'}")
    assert hashlib.sha256((tmp_path / "bo.db").read_bytes()).hexdigest() == before
    assert not (tmp_path / "bo.db-journal").exists() and not (tmp_path / "bo.db-wal").exists()


def test_unreachable_databases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = import_fails(f"sqlite:///{tmp_path / 'missing.db'}")
    assert "no such database file" in out
    assert not (tmp_path / "missing.db").exists()  # never created
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = import_fails(f"postgresql+psycopg://u:hunter2pw@127.0.0.1:{port}/bo")
    assert "error: reading the back-office postgresql+psycopg://u:***@127.0.0.1" in out
    assert "hunter2pw" not in out


def test_missing_table_and_column_name_the_mapping_line(backoffice: Any) -> None:
    url, _, _ = backoffice
    Path("map.yaml").write_text(
        "tables:\n  providers: llm_providers\ncolumns:\n  api_keys.key_value: secret\n"
    )
    out = import_fails(url, "--mapping", "map.yaml")
    assert "no table 'llm_providers' (the providers table) (mapped at map.yaml:2)" in out
    execute(url, "ALTER TABLE providers RENAME TO llm_providers")
    out = import_fails(url, "--mapping", "map.yaml")
    assert (
        "table 'api_keys' has no column 'secret' (api_keys.key_value) (mapped at map.yaml:4)"
        in (out)
    )
    execute(url, "ALTER TABLE api_keys RENAME COLUMN key_value TO secret")
    res = run("import", "--from-url", url, "--mapping", "map.yaml", "--secrets", "env")
    assert res.exit_code == 0, res.output
    assert "imported 155 providers" in res.stderr
    execute(url, "ALTER TABLE provider_models RENAME COLUMN capabilities TO caps")
    out = import_fails(url, "--mapping", "map.yaml")
    assert "table 'provider_models' has no column 'capabilities'" in out and "hint: map it" in out


def test_mapping_file_errors_at_file_line(backoffice: Any) -> None:
    url, _, _ = backoffice
    Path("bad.yaml").write_text(
        "tables:\n  provider: llm_providers\ncolumns:\n  api_keys.kye_value: secret\n"
        "  providers.provider_id: null\nextra: 1\n"
    )
    out = import_fails(url, "--mapping", "bad.yaml")
    assert "bad.yaml:2:3: error: unknown table 'provider'" in out
    assert "did you mean 'providers'?" in out
    assert "bad.yaml:4:3: error: unknown column 'api_keys.kye_value'" in out
    assert "bad.yaml:5:3: error: providers.provider_id is required" in out
    assert "bad.yaml:6:1: error: unknown section 'extra'" in out
    Path("syntax.yaml").write_text("tables:\n  providers: [\n")
    assert "syntax.yaml:" in import_fails(url, "--mapping", "syntax.yaml")


def test_invalid_json_and_duplicate_model_ids(backoffice: Any) -> None:
    url, _, _ = backoffice
    execute(url, "UPDATE provider_models SET parameters = '{oops' WHERE id = 900001")
    out = import_fails(url)
    assert "provider_models row id=900001: parameters is not valid JSON" in out
    execute(url, "UPDATE provider_models SET parameters = '[1]' WHERE id = 900001")
    assert "parameters must be a JSON object, not a list" in import_fails(url)
    execute(url, "UPDATE provider_models SET parameters = NULL WHERE id = 900001")
    # a back-office without the unique constraint: the same model twice
    execute(url, "CREATE TABLE pm2 AS SELECT * FROM provider_models")
    execute(url, "INSERT INTO pm2 SELECT * FROM provider_models WHERE id = 900000")
    Path("m.yaml").write_text("tables:\n  provider_models: pm2\n")
    out = import_fails(url, "--mapping", "m.yaml")
    assert (
        "provider 'edge-bo': model id 'meta-llama/Llama-3.1-8B:free' is repeated (pm2 row "
        "id=900000 and pm2 row id=900000); nothing was written" in out
    )


def test_invalid_values_name_the_row(backoffice: Any) -> None:
    url, _, _ = backoffice
    execute(
        url,
        'UPDATE providers SET connection_params = \'{"api_base": "ftp://x"}\' WHERE id = 900000',
    )
    out = import_fails(url)
    assert "provider 'edge-bo' (providers row id=900000): connection.api_base:" in out
    assert "nothing was written" in out


def test_encrypted_keys_need_the_legacy_key(
    backoffice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, keys, _ = backoffice
    monkeypatch.delenv("GWCONFIG_LEGACY_KEY")
    out = import_fails(url)
    assert "provider 'edge-bo' (api_keys row id=900002): the key is stored encrypted" in out
    monkeypatch.setenv("GWCONFIG_LEGACY_KEY", Fernet.generate_key().decode())
    out = import_fails(url)
    assert "(api_keys row id=900002): the encrypted key cannot be opened" in out
    monkeypatch.setenv("GWCONFIG_LEGACY_KEY", "not-a-key")
    assert "GWCONFIG_LEGACY_KEY: key #1 is not a valid Fernet key" in import_fails(url)
    assert "not-a-key" not in import_fails(url)
    for value in keys.values():
        assert value not in out


def test_legacy_decrypt_hook(
    backoffice: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _, legacy = backoffice
    monkeypatch.delenv("GWCONFIG_LEGACY_KEY")
    (tmp_path / "bo_hook.py").write_text(
        "from cryptography.fernet import Fernet\n"
        f"def open_token(token):\n    return Fernet({legacy!r}).decrypt(token.encode()).decode()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    res = run(
        "import", "--from-url", url, "--secrets", "env", "--legacy-decrypt", "bo_hook:open_token"
    )
    assert res.exit_code == 0, res.output
    assert "GW_EDGE_BO_KEY_KEY_2_PRODUCTION" in res.output
    out = import_fails(url, "--legacy-decrypt", "bo_hook:nope")
    assert "--legacy-decrypt: 'bo_hook:nope' is not a function" in out
    sys.modules.pop("bo_hook", None)


def test_verify_lists_gateway_side_changes_as_json(
    backoffice: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from gwconfig.secrets.keys import generate_key

    url, keys, _ = backoffice
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", generate_key())
    gw = f"sqlite:///{tmp_path / 'gw.db'}"
    assert run("import", "--from-url", url, "--secrets", "env", "--out", "p.d").exit_code == 0
    from gwconfig.adopt.writer import env_name
    from gwconfig.entities import SecretScope

    for pid, value in keys.items():
        if "/" not in pid:
            monkeypatch.setenv(env_name(SecretScope(pid, "key", "default", "production")), value)
    for label, scope in {
        "edge-bo/default": ("key", "default", "production"),
        "edge-bo/key-2": ("key", "key-2", "production"),
        "edge-bo/expired": ("key", "default", "staging"),
        "edge-bo/param": ("param", "org_secret", "production"),
    }.items():
        monkeypatch.setenv(env_name(SecretScope("edge-bo", *scope)), keys[label])  # type: ignore[arg-type]
    assert run("db", "upgrade", "--database-url", gw).exit_code == 0
    res = run("apply", "p.d", "--database-url", gw, "--auto-approve")
    assert res.exit_code == 0, res.output
    execute(gw, "UPDATE provider_models SET enabled = 1 WHERE model_id = 'org.model@v1.2'")
    execute(gw, "DELETE FROM api_keys WHERE provider_id = 'edge-bo' AND name = 'key-2'")
    res = run("verify", "--against", url, "--database-url", gw, "--format", "json")
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert report["parity"] is False and report["differences"] == 2
    assert report["listed"] == [
        "provider edge-bo: model org.model@v1.2: enabled: back-office False, gateway True",
        "provider edge-bo: API key key-2@production: only in the back-office",
    ]
    assert report["providers"]["edge-bo"] == {
        "backoffice": {"models": 3, "keys": 3, "parameters": 8},
        "gateway": {"models": 3, "keys": 2, "parameters": 8},
    }
    for value in keys.values():
        assert value not in res.output


def test_the_back_office_connection_cannot_write(bo_corpus: ModuleType, db_url: str) -> None:
    from gwconfig.adopt.source import read_only
    from gwconfig.errors import DatabaseError

    bo_corpus.create_backoffice(db_url)
    rows, _ = bo_corpus.catalogue_rows(1)
    bo_corpus.fill(db_url, {"providers": rows["providers"][:3]})
    with pytest.raises(DatabaseError, match=r"(?i)read.?only"), read_only(db_url) as conn:
        assert len(conn.exec_driver_sql("SELECT id FROM providers").fetchall()) == 3
        conn.exec_driver_sql("DELETE FROM providers")
    with read_only(db_url) as conn:
        assert len(conn.exec_driver_sql("SELECT id FROM providers").fetchall()) == 3


def test_credential_headers_are_imported_as_secrets(
    backoffice: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A credential header of ``connection_params.headers`` is imported sealed or as an env
    reference, stored encrypted, compared by value by verify and never printed; a parameter
    named like a secret but not sensitive is imported with a warning naming it."""
    import json
    import secrets as random_secrets

    from sqlalchemy import create_engine, text

    from gwconfig.adopt.writer import env_name
    from gwconfig.entities import SecretScope
    from gwconfig.secrets.keys import generate_key

    url, keys, _ = backoffice
    header = "Bearer hdr-" + random_secrets.token_hex(12)
    engine = create_engine(url)
    with engine.begin() as conn:
        row = conn.execute(
            text("SELECT id, connection_params FROM providers WHERE provider_id = 'edge-bo'")
        ).one()
        params = json.loads(row[1])
        params["headers"] = {"Authorization": header, "X-Team": "blue"}
        params["api_token"] = "plain-but-named-like-a-secret"
        conn.execute(
            text("UPDATE providers SET connection_params = :c WHERE id = :i"),
            {"c": json.dumps(params), "i": row[0]},
        )
    engine.dispose()
    res = run("import", "--from-url", url, "--secrets", "env", "--out", "p.d")
    assert res.exit_code == 0, res.output
    name = env_name(SecretScope("edge-bo", "param", "header:Authorization", "default"))
    assert f"{name}\t# provider edge-bo parameter header:Authorization" in res.stdout
    assert (
        f"warning: provider 'edge-bo' (providers row id={row[0]}, connection_params.api_token): "
        "parameter 'api_token' is "
        "named like a secret but not sensitive" in res.stderr
    )
    written = (Path("p.d") / "edge-bo.yaml").read_text()
    assert f"Authorization:\n      env: {name}\n" in written and "X-Team: blue" in written
    assert run("validate", "p.d").exit_code == 0
    # sealed: the header is a sealed value bound to its provider and name
    assert run("seal-keygen", "--out-dir", "sealed.d").exit_code == 0
    res_sealed = run("import", "--from-url", url, "--out", "sealed.d")
    assert res_sealed.exit_code == 0, res_sealed.output
    sealed = (Path("sealed.d") / "edge-bo.yaml").read_text()
    assert "Authorization:\n      sealed: gwseal:v1:" in sealed
    # applied and verified: parity; the stored value is ciphertext
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", generate_key())
    for pid, value in keys.items():
        if "/" not in pid:
            monkeypatch.setenv(env_name(SecretScope(pid, "key", "default", "production")), value)
    for label, scope in {
        "edge-bo/default": ("key", "default", "production"),
        "edge-bo/key-2": ("key", "key-2", "production"),
        "edge-bo/expired": ("key", "default", "staging"),
        "edge-bo/param": ("param", "org_secret", "production"),
    }.items():
        monkeypatch.setenv(env_name(SecretScope("edge-bo", *scope)), keys[label])  # type: ignore[arg-type]
    monkeypatch.setenv(name, header)
    gw = f"sqlite:///{tmp_path / 'gw.db'}"
    assert run("db", "upgrade", "--database-url", gw).exit_code == 0
    applied = run("apply", "p.d", "--database-url", gw, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    verified = run("verify", "--against", url, "--database-url", gw)
    assert verified.exit_code == 0, verified.output
    # the back-office changes the header: verify names it, never prints either value
    changed = header + "-rotated"
    with create_engine(url).begin() as conn:
        params["headers"]["Authorization"] = changed
        conn.execute(
            text("UPDATE providers SET connection_params = :c WHERE id = :i"),
            {"c": json.dumps(params), "i": row[0]},
        )
    drift = run("verify", "--against", url, "--database-url", gw)
    assert drift.exit_code == 1 and "header:Authorization" in drift.output, drift.output
    outputs = [res.output, res_sealed.output, applied.output, verified.output, drift.output]
    outputs += [written, sealed, (tmp_path / "gw.db").read_bytes().decode("latin-1")]
    for out in outputs:
        assert header not in out and changed not in out
