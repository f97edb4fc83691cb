"""``keys rotate`` takes the apply lock: rotation and apply in parallel processes never undo
each other. The interleavings are forced, not timed: the test holds the lock itself (bare, or
while it applies or rotates through the same API), starts the processes, reads on their stderr
that each is waiting for the lock, then releases it."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

from builders import gateway_doc, provider_doc, write_manifests
from conftest import ENGINE_PARAMS, make_database
from gwconfig.db.lock import locked
from gwconfig.db.session import open_database
from gwconfig.reconcile import commands, planning
from gwconfig.reconcile.apply import execute_plan
from gwconfig.reconcile.plan import PlanOptions
from gwconfig.reconcile.rotation import rotate_secrets
from gwconfig.reconcile.state import read_state
from gwconfig.secrets.keys import EncryptionKeys, generate_key, key_id
from reconcile_helpers import runtime_secrets, stored_key_ids

WAITING = "gwconfig: waiting for the lock on "
#: a safety net against a hung process, never an assumption about speed
BOUND = 60.0


class Process:
    """A ``gwconfig`` subprocess whose stderr lines are collected as they come."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        cmd = [sys.executable, "-c", "from gwconfig.cli import main; main()", *args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_until_waiting(self) -> None:
        """Block until the process says it waits for the lock (fail if it ends first)."""
        while True:
            try:
                line = self.lines.get(timeout=BOUND)
            except queue.Empty:
                self.proc.kill()
                pytest.fail(f"never waited for the lock: {''.join(self.stderr)}")
            if line is None:
                pytest.fail(f"ended without waiting for the lock: {''.join(self.stderr)}")
            if line.startswith(WAITING):
                return

    def finish(self) -> str:
        """Wait for the exit; assert success; return stdout."""
        out, _ = self.proc.communicate(timeout=BOUND * 3)
        self.reader.join(timeout=BOUND)
        assert not self.reader.is_alive(), "stderr of the process never ended"
        assert self.proc.returncode == 0, (out, "".join(self.stderr))
        return out


@pytest.fixture(params=ENGINE_PARAMS)
def setup(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Path, str, str, dict[str, str]]]:
    """(url, manifests, OLD, NEW, subprocess env): revision 1 applied under OLD; the env has
    ``NEW,OLD`` and the secret values a second apply writes."""
    gen = make_database(request.param, tmp_path)
    url = next(gen)
    try:
        old, new = generate_key(), generate_key()
        for var, value in (("GWCONFIG_ENCRYPTION_KEY", old), ("GWT_API_KEY", "sk-1"),
                           ("GWT_PROJECT", "proj-1")):  # fmt: skip
            monkeypatch.setenv(var, value)
        monkeypatch.delenv("GITHUB_SHA", raising=False)
        open_database(url, upgrade=True).dispose()
        root = write_manifests(tmp_path / "m", provider_doc(), gateway_doc())
        commands.apply(str(root), url, PlanOptions(), review=lambda p: True)
        env = {**os.environ, "GWCONFIG_ENCRYPTION_KEY": f"{new},{old}", "GWT_API_KEY": "sk-2",
               "GWT_PROJECT": "proj-2"}  # fmt: skip
        yield url, root, old, new, env
    finally:
        for _ in gen:
            pass


@contextmanager
def _holding_lock(url: str) -> Iterator[Connection]:
    """Hold the apply lock on the test's own connection (released, then disposed, on exit)."""
    holder = open_database(url)
    try:
        with locked(holder) as conn:
            yield conn
    finally:
        holder.dispose()


def _rotate(url: str, env: dict[str, str]) -> Process:
    return Process(env, "keys", "rotate", "--database-url", url, "--lock-timeout", "600")


def _apply(url: str, root: Path, env: dict[str, str]) -> Process:
    return Process(env, "apply", str(root), "--database-url", url, "--auto-approve",
                   "--lock-timeout", "600")  # fmt: skip


def _assert_apply_values_under(url: str, root: Path, new: str, monkeypatch: Any) -> None:
    """The final state: the apply's values, every secret under NEW, and NEW alone suffices."""
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", new)
    monkeypatch.setenv("GWT_API_KEY", "sk-2")
    monkeypatch.setenv("GWT_PROJECT", "proj-2")
    assert stored_key_ids(url) == {key_id(new)}
    assert runtime_secrets(url) == ("sk-2", "proj-2")
    assert commands.plan(str(root), url, PlanOptions()).changes == ()


def _apply_in(conn: Connection, root: Path, keys: EncryptionKeys) -> None:
    """What ``apply`` does under the lock, on the test's own locked connection."""
    state = read_state(conn)
    bound = keys.bind(state.stored_keys())
    config = planning.compile_manifests(str(root), None)
    desired = planning.resolve_desired(config.data, bound)
    plan = planning.compute_plan(conn, state, desired, PlanOptions())
    assert plan.effective_changes
    execute_plan(conn, plan, base=state, values=desired.values, keys=bound, actor="test")


@pytest.mark.slow
def test_rotate_and_apply_waiting_together_both_finish(
    setup: tuple[str, Path, str, str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root, _old, new, env = setup
    with _holding_lock(url):  # whichever of the two gets the lock next, the result is the same
        rotate, apply = _rotate(url, env), _apply(url, root, env)
        rotate.wait_until_waiting()
        apply.wait_until_waiting()
    assert "re-encrypted 2 secrets" in rotate.finish()
    assert "Apply complete: revision 2" in apply.finish()
    _assert_apply_values_under(url, root, new, monkeypatch)


@pytest.mark.slow
def test_rotate_waits_for_an_apply_in_progress(
    setup: tuple[str, Path, str, str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root, old, new, env = setup
    for var in ("GWT_API_KEY", "GWT_PROJECT"):
        monkeypatch.setenv(var, env[var])
    with _holding_lock(url) as conn:  # the apply has written, not committed
        _apply_in(conn, root, EncryptionKeys([new, old]))
        rotate = _rotate(url, env)
        rotate.wait_until_waiting()
    assert "re-encrypted 2 secrets" in rotate.finish()
    _assert_apply_values_under(url, root, new, monkeypatch)


@pytest.mark.slow
def test_apply_waits_for_a_rotation_in_progress(
    setup: tuple[str, Path, str, str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root, old, new, env = setup
    with _holding_lock(url) as conn:  # the rotation has written, not committed
        assert rotate_secrets(conn, EncryptionKeys([new, old])).secrets == 2
        apply = _apply(url, root, env)
        apply.wait_until_waiting()
    assert "Apply complete: revision 2" in apply.finish()
    _assert_apply_values_under(url, root, new, monkeypatch)


def test_rotate_gives_up_after_its_lock_timeout(
    setup: tuple[str, Path, str, str, dict[str, str]],
) -> None:
    url, _root, _old, _new, env = setup
    with _holding_lock(url):
        rotate = Process(env, "keys", "rotate", "--database-url", url, "--lock-timeout", "0")
        rotate.proc.wait(timeout=BOUND)
    rotate.reader.join(timeout=BOUND)
    assert not rotate.reader.is_alive(), "stderr of keys rotate never ended"
    assert rotate.proc.returncode == 1, rotate.stderr
    assert "another apply or key rotation holds the lock" in "".join(rotate.stderr)
    assert "raise --lock-timeout" in "".join(rotate.stderr)
