"""Bulk writes: PostgreSQL's ``COPY`` path writes exactly what the plain ``INSERT`` path writes.

The differential test applies the same manifests twice on PostgreSQL, once through ``COPY`` (the
fast path) and once with it switched off, records the statements each run sent, and compares
the states read back: it fails if the fast path is not used as much as if it writes differently.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from builders import gateway_doc, provider_doc, write_manifests
from conftest import make_database
from gwconfig.db import bulk
from gwconfig.db.session import open_database
from reconcile_helpers import apply, plan, read_state_at


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every statement any engine sends while the block runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.lstrip().upper())

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def _state(url: str) -> tuple[Any, str]:
    state = read_state_at(url)
    return state.data, state.state_hash


MANIFESTS = {
    "one provider": lambda: [provider_doc(), gateway_doc()],
    "many models": lambda: [
        provider_doc(
            models=[
                {
                    "model_id": f"m{i}",
                    "context_window": 1000 + i,
                    "capabilities": ["vision"],
                    "pricing": {"input_per_1m": i / 7},
                }
                for i in range(1, 40)
            ]
        ),
        provider_doc("b", tags=[]),
        gateway_doc(),
    ],
    "several providers": lambda: [*(provider_doc(f"p{i}") for i in range(6)), provider_doc()],
}


@pytest.mark.parametrize("manifests", sorted(MANIFESTS))
def test_copy_writes_what_insert_writes(
    pg_url: str,
    tmp_path: Path,
    fernet_key: str,
    monkeypatch: pytest.MonkeyPatch,
    manifests: str,
) -> None:
    for var, value in (("GWCONFIG_ENCRYPTION_KEY", fernet_key), ("GWT_API_KEY", "sk-1"),
                       ("GWT_PROJECT", "proj-1")):  # fmt: skip
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    root = write_manifests(tmp_path / "m", *MANIFESTS[manifests]())
    plain_db = make_database("postgres", tmp_path / "plain")
    plain_url = next(plain_db)
    try:
        results = {}
        for url, copy in ((pg_url, True), (plain_url, False)):
            open_database(url, upgrade=True).dispose()
            with monkeypatch.context() as patch:
                if not copy:
                    patch.setattr(bulk, "uses_copy", lambda _conn: False)
                with statements() as seen:
                    apply(root, url)
            copies = [s for s in seen if s.startswith("COPY ")]
            inserts = [s for s in seen if s.startswith("INSERT INTO PROVIDER")]
            if copy:  # the fast path is really taken, for the bulk tables
                assert copies and not inserts, seen
            else:
                assert inserts and not copies, seen
            assert plan(root, url).changes == ()
            results[copy] = _state(url)
        assert results[True] == results[False]
    finally:
        plain_db.close()
