"""The state reader: what rows builders write, read_state reads back in canonical form."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert

from builders import SECRETS, fake_resolve, sample_config
from gwconfig.canonical import content_hash, empty_config
from gwconfig.db import Database, open_database
from gwconfig.db.models import ConfigRevision
from gwconfig.db.rows import insert_config
from gwconfig.manifests.compile import CompiledConfig
from gwconfig.reconcile.state import (
    canonical_models,
    model_from_row,
    read_state,
    read_tables,
)
from gwconfig.reconcile.stored_keys import read_stored_keys
from gwconfig.secrets.keys import EncryptionKeys


def expected_state(config: CompiledConfig, keys: EncryptionKeys) -> dict[str, Any]:
    """The compiled data with every secret reference replaced by its stored fingerprint."""
    data = copy.deepcopy(dict(config.data))
    for p in data["providers"]:
        for k in p["api_keys"]:
            k["value"] = {"fingerprint": keys.fingerprint(fake_resolve(k["value"], ("", "", "")))}
        for prm in p["connection_parameters"]:
            if prm["sensitive"]:
                plain = fake_resolve(prm["value"], ("", "", ""))
                prm["value"] = {"fingerprint": keys.fingerprint(plain)}
    return data


def test_empty_database_reads_as_empty_config(db_url: str) -> None:
    db = open_database(db_url, upgrade=True)
    with db.connect() as conn:
        state = read_state(conn)
    assert state.data == empty_config()
    assert state.secrets == {}
    assert state.last_revision is None
    assert state.state_hash == content_hash(empty_config())
    db.dispose()


def test_round_trip_matches_compiled_shape(db_url: str, fernet_key: str) -> None:
    keys = EncryptionKeys(fernet_key)
    config = sample_config()
    db = open_database(db_url, upgrade=True)
    with db.engine.begin() as conn:
        counts = insert_config(conn, config.data, keys, resolve=fake_resolve)
    assert counts == {
        "providers": 2,
        "provider_models": 4,
        "api_keys": 2,
        "connection_parameters": 4,
        "routes": 2,
        "consumers": 0,
    }
    with db.session() as session:
        state = read_state(session)
    assert state.data == expected_state(config, keys)
    assert state.state_hash == content_hash(state.data)
    assert state.data["gateway"]["default_route"] == "smart"
    assert state.provider("openai")["deletion_protection"] is True  # type: ignore[index]
    assert state.provider("nope") is None
    # types survive the trip: plain parameter values keep int/bool/float
    params = {p["name"]: p["value"] for p in state.provider("openai")["connection_parameters"]}  # type: ignore[index]
    assert params["retries_hint"] == 3 and params["beta"] is True and params["ratio"] == 0.25
    # secrets: ciphertext by scope, decryptable, never the plaintext
    assert set(state.secrets) == {
        ("openai", "key", "default", "default"),
        ("openai", "key", "batch", "prod"),
        ("openai", "param", "organization", "default"),
    }
    for scope, token in state.secrets.items():
        assert SECRETS["OPENAI_KEY"] not in token and SECRETS["ORG_SECRET"] not in token
        assert keys.decrypt(token) in SECRETS.values(), scope
    db.dispose()


def seeded(url: str, fernet_key: str) -> tuple[Database, EncryptionKeys]:
    """A database at ``url`` holding :func:`sample_config` (secrets from :func:`fake_resolve`)."""
    keys = EncryptionKeys(fernet_key)
    db = open_database(url, upgrade=True)
    with db.engine.begin() as conn:
        insert_config(conn, sample_config().data, keys, resolve=fake_resolve)
    return db, keys


def test_last_revision_and_hash_change_with_data(sqlite_url: str, fernet_key: str) -> None:
    keys = EncryptionKeys(fernet_key)
    db = open_database(sqlite_url, upgrade=True)
    with db.engine.begin() as conn:
        insert_config(conn, sample_config().data, keys, resolve=fake_resolve)
        before = read_state(conn)
        for n in (1, 2):
            conn.execute(
                insert(ConfigRevision),
                {
                    "number": n,
                    "content_hash": "sha256:x",
                    "state_hash": before.state_hash,
                    "snapshot": {},
                    "actor": "test",
                    "summary": {},
                    "created_at": datetime(2026, 1, n, tzinfo=UTC),
                },
            )
        after = read_state(conn)
    assert before.last_revision is None and after.last_revision == 2
    assert after.state_hash == before.state_hash  # revisions are not gateway state
    db.dispose()


@pytest.mark.parametrize("rotate", [False, True])
def test_fingerprint_depends_on_newest_key(fernet_key: str, rotate: bool) -> None:
    from gwconfig.secrets.keys import generate_key

    keys = EncryptionKeys(fernet_key)
    other = EncryptionKeys([generate_key(), fernet_key] if rotate else [fernet_key, generate_key()])
    same = keys.fingerprint("v") == other.fingerprint("v")
    assert same is (not rotate)


def test_stored_keys_refuse_a_wrong_key_and_ignore_the_order(
    sqlite_url: str, fernet_key: str
) -> None:
    from gwconfig.errors import EncryptionKeyError
    from gwconfig.secrets.keys import generate_key, key_id

    db, keys = seeded(sqlite_url, fernet_key)
    with db.connect() as conn:
        state = read_state(conn)
    assert state.fingerprints[("openai", "key", "default", "default")] == keys.fingerprint(
        SECRETS["OPENAI_KEY"]
    )
    assert set(state.key_ids.values()) == {key_id(fernet_key)}
    assert state.stored_keys().ids == {key_id(fernet_key)}
    with pytest.raises(EncryptionKeyError, match=key_id(fernet_key)):
        EncryptionKeys(generate_key()).bind(state.stored_keys())
    newer = generate_key()
    # before 'keys rotate', NEW,OLD fingerprints with OLD: the stored fingerprints match
    bound = EncryptionKeys([newer, fernet_key]).bind(state.stored_keys())
    assert bound.primary_id == key_id(fernet_key)
    assert bound.fingerprint(SECRETS["OPENAI_KEY"]) == keys.fingerprint(SECRETS["OPENAI_KEY"])
    with db.connect() as conn:
        assert read_stored_keys(conn) == state.stored_keys()
    db.dispose()


def test_read_tables_and_raw_model_rows_match_read_state(db_url: str, fernet_key: str) -> None:
    db, _keys = seeded(db_url, fernet_key)
    with db.connect() as conn:
        state = read_state(conn)
        tables = read_tables(conn)
        raw = read_tables(conn, model_rows=True)
    assert (tables.data, tables.secrets, tables.fingerprints) == (
        state.data,
        state.secrets,
        state.fingerprints,
    )
    assert tables.last_revision == state.last_revision and tables.model_rows is None
    # models sorted by code point on every engine, whatever the database collation
    openai = state.provider("openai")
    assert openai is not None
    assert [m["model_id"] for m in openai["models"]] == [
        "GPT-4o",
        "gpt-4o",
        "text-embedding-3-small",
    ]
    # raw rows: the same models once converted, and no "models" key until then
    assert raw.model_rows is not None and set(raw.model_rows) == {"openai", "mock"}
    assert all("models" not in p for p in raw.data["providers"])
    for p in state.data["providers"]:
        rows = raw.model_rows[p["provider_id"]]
        assert canonical_models(rows) == p["models"]
        assert [model_from_row(row) for row in rows] == p["models"]
    assert raw.secrets == state.secrets
    db.dispose()
