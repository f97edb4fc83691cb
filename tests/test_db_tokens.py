"""The token store (``db/tokens.py``, table ``api_tokens``) on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import inspect, text

from gwconfig.db.models import utcnow
from gwconfig.db.session import open_database
from gwconfig.db.tokens import (
    TOKEN_LENGTH,
    create_token,
    find_token,
    hash_token,
    list_tokens,
    parse_duration,
    revoke_token,
    scope_allows,
)
from gwconfig.errors import NotFoundError, ValidationFailed


def all_cells(url: str) -> list[str]:
    """Every cell of every table of the database, as text."""
    db = open_database(url)
    cells: list[str] = []
    with db.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                cells.extend(str(cell) for cell in row)
    db.dispose()
    return cells


def test_tokens_are_stored_as_hashes_only(db_url: str) -> None:
    db = open_database(db_url, upgrade=True)
    tokens = [
        create_token(db, f"t{i}", scope, models=("gpt-*",) if i else None, rpm=i or None)[0]
        for i, scope in enumerate(("read", "write", "runtime", "invoke", "admin"))
    ]
    db.dispose()
    cells = all_cells(db_url)
    assert len({t for t in tokens}) == 5
    for token in tokens:
        assert len(token) == TOKEN_LENGTH and token.startswith("gwc_")
        body = token.removeprefix("gwc_")
        assert not any(body in cell or body[:16] in cell for cell in cells)
        assert hash_token(token) in cells


def test_create_find_list_revoke(db_url: str) -> None:
    db = open_database(db_url, upgrade=True)
    token, record = create_token(
        db, "ci", "runtime", expires_in=timedelta(days=30), models=("gpt-*", "claude-*"), rpm=60
    )
    assert record.status() == "active"
    found = find_token(db, token)
    assert found is not None
    assert (found.name, found.scope, found.models, found.rpm) == (
        "ci",
        "runtime",
        ("gpt-*", "claude-*"),
        60,
    )
    assert found.expires_at is not None and found.expires_at > utcnow() + timedelta(days=29)
    assert find_token(db, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert find_token(db, "not a token") is None
    assert find_token(db, "") is None

    with pytest.raises(ValidationFailed, match="already exists"):
        create_token(db, "ci", "read")
    assert [r.name for r in list_tokens(db)] == ["ci"]

    first = revoke_token(db, "ci")
    assert first.status() == "revoked"
    again = revoke_token(db, "ci")
    assert again.revoked_at == first.revoked_at
    revoked = find_token(db, token)
    assert revoked is not None and revoked.status() == "revoked"
    with pytest.raises(NotFoundError):
        revoke_token(db, "nope")
    with pytest.raises(ValidationFailed, match="already exists"):
        create_token(db, "ci", "read")  # names stay taken, for the audit log
    db.dispose()


def test_expiry_is_a_status(sqlite_url: str) -> None:
    db = open_database(sqlite_url, upgrade=True)
    _token, record = create_token(db, "short", "read", expires_in=timedelta(seconds=60))
    assert record.status() == "active"
    assert record.status(utcnow() + timedelta(seconds=61)) == "expired"
    assert record.to_dict()["status"] == "active"
    assert "token" not in " ".join(record.to_dict())
    db.dispose()


@pytest.mark.parametrize(
    ("name", "scope", "models", "rpm", "message"),
    [
        ("bad name", "read", None, None, "invalid token name"),
        ("x" * 65, "read", None, None, "invalid token name"),
        ("-x", "read", None, None, "invalid token name"),
        ("ok", "root", None, None, "unknown scope"),
        ("ok", "read", ("",), None, "model pattern"),
        ("ok", "read", ("m",) * 101, None, "too many"),
        ("ok", "read", None, 0, "--rpm"),
    ],
)
def test_bad_options_are_refused(
    memory_url: str,
    name: str,
    scope: str,
    models: tuple[str, ...] | None,
    rpm: int | None,
    message: str,
) -> None:
    db = open_database(memory_url, upgrade=True)
    with pytest.raises(ValidationFailed, match=message):
        create_token(db, name, scope, models=models, rpm=rpm)
    assert list_tokens(db) == []
    db.dispose()


@pytest.mark.parametrize(
    ("text_", "seconds"),
    [("90m", 5400), ("12h", 43200), ("30d", 2592000), ("2w", 1209600), ("3600s", 3600)],
)
def test_durations(text_: str, seconds: int) -> None:
    assert parse_duration(text_) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text_", ["", "5", "5y", "0d", "-1d", "3651d", "1.5h", "9" * 20 + "s"])
def test_bad_durations(text_: str) -> None:
    with pytest.raises(ValidationFailed):
        parse_duration(text_)


def test_scope_rules() -> None:
    assert scope_allows("admin", "write") and scope_allows("admin", "invoke")
    assert scope_allows("write", "read") and scope_allows("write", "write")
    assert not scope_allows("read", "write")
    assert not scope_allows("runtime", "read") and not scope_allows("invoke", "runtime")
