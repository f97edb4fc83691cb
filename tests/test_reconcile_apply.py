"""apply: idempotence (statement count), atomicity (failure at every statement, killed process),
locking (timeout, parallel processes) on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from builders import gateway_doc, provider_doc, write_manifests
from conftest import ENGINE_PARAMS
from gwconfig.errors import LockError
from gwconfig.reconcile import commands, revisions
from reconcile_helpers import apply, dump_tables, plan


class Injected(Exception):
    """The failure injected into one statement."""


@contextmanager
def statements() -> Iterator[list[str]]:
    """Record every statement any engine executes inside the block."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


@contextmanager
def fail_at(k: int) -> Iterator[list[str]]:
    """Raise :class:`Injected` at the k-th statement (1-based) executed inside the block."""
    seen: list[str] = []

    def maybe_fail(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)
        if len(seen) == k:
            raise Injected(f"injected failure at statement {k}: {statement[:60]}")

    event.listen(Engine, "before_cursor_execute", maybe_fail)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", maybe_fail)


WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "COPY")  # COPY: bulk inserts on PostgreSQL


def test_second_apply_writes_nothing(gw: str, tmp_path: Path) -> None:
    root = write_manifests(tmp_path / "m", provider_doc(), provider_doc("b"), gateway_doc())
    with statements() as first:
        apply(root, gw)
    assert any(s.lstrip().upper().startswith(("INSERT", "COPY")) for s in first)
    before = dump_tables(gw)
    with statements() as second:
        p, result = apply(root, gw)
    assert p.changes == () and result.revision is None
    writes = [s for s in second if s.lstrip().upper().startswith(WRITES)]
    assert writes == []
    assert dump_tables(gw) == before


def _multi_change(root: Path) -> None:
    models = [{"model_id": "m1", "max_tokens": 10}, {"model_id": "m3"}]
    routes = [
        {"name": "chat", "targets": [{"model": "openai/m3"}]},
        {"name": "new", "targets": [{"model": "openai/m1"}]},
    ]
    write_manifests(
        root,
        provider_doc(description="v2", models=models),
        provider_doc("c"),
        gateway_doc(default_route="new", routes=routes),
    )


def test_failure_at_every_statement_leaves_database_unchanged(
    gw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_manifests(tmp_path / "m", provider_doc(), provider_doc("b"), gateway_doc())
    apply(root, gw)
    monkeypatch.setenv("GWT_API_KEY", "sk-rotated")  # a secret update too
    _multi_change(root)
    expected = plan(root, gw, prune=True)
    kinds = {(c.action, c.entity) for c in expected.effective_changes}
    wanted = {("create", "provider"), ("update", "model"), ("delete", "model"),
              ("delete", "provider"), ("update", "api_key"), ("create", "route"),
              ("update", "route"), ("update", "default_route")}  # fmt: skip
    assert wanted <= kinds
    before = dump_tables(gw)
    failures = 0
    for k in range(1, 500):
        with fail_at(k) as seen:
            try:
                _, result = apply(root, gw, prune=True)
            except Injected:
                failures += 1
                assert dump_tables(gw) == before, f"database changed after a failure at {seen[-1]}"
                continue
        # k is past the last statement that matters: the apply went through
        assert result.revision == 2
        break
    else:
        pytest.fail("the apply never succeeded")
    assert failures >= 20
    assert plan(root, gw, prune=True).changes == ()


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from gwconfig.reconcile import commands
    from gwconfig.reconcile.plan import PlanOptions

    count = 0

    def kill(conn, cursor, statement, *args):
        global count
        if statement.lstrip().upper().startswith(("INSERT", "COPY")):
            count += 1
            if count == 3:  # after the first writes, before commit
                os.kill(os.getpid(), signal.SIGKILL)

    event.listen(Engine, "before_cursor_execute", kill)
    commands.apply(sys.argv[1], sys.argv[2], PlanOptions(prune=True),
                   review=lambda plan: True)
    """
)


def test_killed_process_leaves_old_state(gw: str, tmp_path: Path) -> None:
    root = write_manifests(tmp_path / "m", provider_doc(), gateway_doc())
    apply(root, gw)
    _multi_change(root)
    before = dump_tables(gw)
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(root), gw],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr
    assert dump_tables(gw) == before
    _, result = apply(root, gw, prune=True)
    assert result.revision == 2


def test_lock_timeout_is_a_clear_error(gw: str, tmp_path: Path) -> None:
    from gwconfig.db.lock import locked
    from gwconfig.db.session import open_database

    root = write_manifests(tmp_path / "m", provider_doc())
    holder = open_database(gw)
    try:
        with (
            locked(holder, 5),
            pytest.raises(LockError, match="another apply or key rotation holds the lock"),
        ):
            apply(root, gw, lock_timeout=0.3)
    finally:
        holder.dispose()
    _, result = apply(root, gw, lock_timeout=5)
    assert result.revision == 1


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from gwconfig.cli import main; main()", *args]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ENGINE_PARAMS)
def test_parallel_applies_serialise(
    kind: str, tmp_path: Path, fernet_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import make_database
    from gwconfig.db.session import open_database

    gen = make_database(kind, tmp_path)
    url = next(gen)
    try:
        open_database(url, upgrade=True).dispose()
        for var, value in (("GWCONFIG_ENCRYPTION_KEY", fernet_key), ("GWT_API_KEY", "k"),
                           ("GWT_PROJECT", "p")):  # fmt: skip
            monkeypatch.setenv(var, value)
        env = dict(os.environ)
        dirs = [write_manifests(tmp_path / f"m{i}", provider_doc(f"p{i}")) for i in range(4)]
        jobs = [*dirs, dirs[0], dirs[1]]  # two repeats: one of each pair finds nothing to do
        procs = [
            subprocess.Popen(
                _cli(
                    "apply",
                    str(d),
                    "--database-url",
                    url,
                    "--auto-approve",
                    "--lock-timeout",
                    "120",
                    "--actor",
                    f"job{i}",
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for i, d in enumerate(jobs)
        ]
        outputs = [p.communicate(timeout=180) for p in procs]
        assert [p.returncode for p in procs] == [0] * len(jobs), outputs
        found = revisions.history(url, limit=50)
        assert sorted(r.number for r in found) == [1, 2, 3, 4]
        tables = dump_tables(url)
        assert sorted(r[0] for r in tables["providers"]) == ["p0", "p1", "p2", "p3"]
        assert len(tables["provider_models"]) == 8
        assert len(tables["audit_events"]) == 4 * 6
        for d in dirs:
            assert plan(d, url).summary["add"] == 0
    finally:
        for _ in gen:
            pass


def _assert_recorded_state(url: str, number: int, desired: Any) -> None:
    """Revision ``number`` holds the state hash and snapshot of a real re-read of the tables."""
    from sqlalchemy import select

    from gwconfig.db.models import ConfigRevision
    from gwconfig.db.session import open_database
    from gwconfig.reconcile.apply import revision_snapshot
    from gwconfig.reconcile.state import read_state

    db = open_database(url)
    try:
        with db.connect() as conn:
            state = read_state(conn)
            t = ConfigRevision.__table__
            row = conn.execute(
                select(t.c.state_hash, t.c.snapshot).where(t.c.number == number)
            ).one()
    finally:
        db.dispose()
    assert state.last_revision == number
    assert row.state_hash == state.state_hash
    assert row.snapshot == revision_snapshot(state, desired)


def test_revision_records_exactly_the_state_read_back(
    gw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apply computes the resulting state from the plan; it must equal a real re-read."""
    root = tmp_path / "m"
    plain_project = {"name": "project", "value": "proj-plain"}
    floats = [
        {"model_id": "m1", "parameters": {"temperature": 1.0, "top_p": 1}, "aliases": ["one"]},
        {"model_id": "m4", "pricing": {"input_per_1m": 2.0, "output_per_1m": 0.5}},
    ]

    def rotate_and_change() -> None:
        monkeypatch.setenv("GWT_API_KEY", "sk-rotated")
        _multi_change(root)

    def protected_plain_parameter() -> None:
        write_manifests(
            root,
            provider_doc(
                models=floats,
                connection={"api_base": None, "parameters": [plain_project]},
                api_keys=[],
                deletion_protection=True,
            ),
            provider_doc("b", description="only b is applied"),
            gateway_doc(routes=[{"name": "chat", "targets": [{"model": "openai/m4"}]}]),
        )

    steps: list[tuple[Any, dict[str, Any]]] = [
        (lambda: write_manifests(root, provider_doc(), provider_doc("b"), gateway_doc()), {}),
        (rotate_and_change, {"prune": True}),
        (protected_plain_parameter, {"prune": True, "targets": ("b",)}),
        (lambda: None, {"prune": True}),
    ]
    for number, (step, options) in enumerate(steps, start=1):
        step()
        plan_, result = apply(root, gw, **options)
        assert result.revision == number
        _assert_recorded_state(gw, number, plan_.desired)
    assert plan(root, gw, prune=True).changes == ()
    plan_, result = commands.rollback(gw, 2, review=lambda _p: True)
    assert result.revision == 5
    _assert_recorded_state(gw, 5, plan_.desired)
