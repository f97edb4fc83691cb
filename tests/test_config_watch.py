"""Configuration generations: every writer announces in its transaction, the watcher sees it.

PostgreSQL through LISTEN/NOTIFY, SQLite and MariaDB through the cheap counter check. Nothing is
timed: each write is followed by waiting (with a generous bound, a safety net only) for the
watcher's callback or ``wait_for_change``; a rolled-back write is shown not to count by the
next committed write's number.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from builders import gateway_doc, provider_doc, write_manifests
from gwconfig.db.notify import ConfigGeneration, announce, read_generation
from gwconfig.db.session import open_database
from gwconfig.db.watch import GenerationWatcher, shared_watcher, stop_shared_watchers
from gwconfig.reconcile import commands
from gwconfig.reconcile.plan import PlanOptions
from gwconfig.reconcile.rotation import rotate_url
from gwconfig.secrets.keys import generate_key
from gwconfig.seed.service import ProviderService

#: a safety net against a hung watcher, never an assumption about speed
BOUND = 60.0


def yes(_plan: object) -> bool:
    """Approve every plan."""
    return True


@pytest.fixture
def gw(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """An upgraded gateway database with a key and the manifests' secrets in the environment."""
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", generate_key())
    monkeypatch.setenv("GWT_API_KEY", "sk-watch-1")
    monkeypatch.setenv("GWT_PROJECT", "proj-1")
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    open_database(db_url, upgrade=True).dispose()
    yield db_url
    stop_shared_watchers()


class Seen:
    """A watcher subscription collecting every generation it is told about."""

    def __init__(self, watcher: GenerationWatcher) -> None:
        self.queue: queue.Queue[ConfigGeneration | None] = queue.Queue()
        self.unsubscribe = watcher.subscribe(self.queue.put)

    def next(self) -> ConfigGeneration | None:
        """The next generation the watcher reports (fails after :data:`BOUND` seconds)."""
        try:
            return self.queue.get(timeout=BOUND)
        except queue.Empty:
            pytest.fail("the watcher never reported the write")


def stored(url: str) -> ConfigGeneration:
    db = open_database(url)
    try:
        with db.connect() as conn:
            gen = read_generation(conn)
    finally:
        db.dispose()
    assert gen is not None
    return gen


def test_every_writer_announces_and_the_watcher_sees_it(
    gw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = GenerationWatcher(gw, interval_seconds=0.02).start()
    try:
        first = watcher.current_generation
        assert first is not None and first == stored(gw) and first.number == 0
        seen = Seen(watcher)
        root = write_manifests(tmp_path / "m", provider_doc(), gateway_doc())

        commands.apply(str(root), gw, PlanOptions(), review=yes)
        assert seen.next() == ConfigGeneration(first.epoch, 1)

        monkeypatch.setenv("GWT_API_KEY", "sk-watch-2")
        commands.apply(str(root), gw, PlanOptions(), review=yes)
        assert seen.next() == ConfigGeneration(first.epoch, 2)

        commands.rollback(gw, 1, review=yes)
        assert seen.next() == ConfigGeneration(first.epoch, 3)

        current = os.environ["GWCONFIG_ENCRYPTION_KEY"]
        monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", f"{generate_key()},{current}")
        rotate_url(gw)
        assert seen.next() == ConfigGeneration(first.epoch, 4)

        db = open_database(gw)
        try:
            with db.session() as session:
                service = ProviderService(session, current_user_id="watch-test")
                service.update_provider("openai", {"description": "changed by the service"})
            assert seen.next() == ConfigGeneration(first.epoch, 5)
            # a write that fails is rolled back with its announcement: the next one is 6
            with db.session() as session, pytest.raises(Exception, match="openai"):
                ProviderService(session).create_provider(
                    {"provider_id": "openai", "provider_type": "openai"}
                )
            with db.session() as session:
                ProviderService(session).update_provider("openai", {"description": "again"})
            assert seen.next() == ConfigGeneration(first.epoch, 6)
        finally:
            db.dispose()
        assert stored(gw) == watcher.current_generation
        seen.unsubscribe()
    finally:
        watcher.stop()


def test_wait_for_change_returns_when_a_write_commits(gw: str) -> None:
    watcher = shared_watcher(gw)
    assert shared_watcher(gw) is watcher  # one per database and process
    before = watcher.current_generation
    db = open_database(gw)
    started = threading.Event()

    def write() -> None:
        assert started.wait(BOUND)
        with db.engine.begin() as conn:
            announce(conn)

    async def main() -> tuple[ConfigGeneration | None, ConfigGeneration | None]:
        # nothing changes: the timeout answers with the generation the caller has
        unchanged = await watcher.wait_for_change(before, 0.0)
        waiting = asyncio.create_task(watcher.wait_for_change(before, BOUND))
        await asyncio.sleep(0)  # let the waiter register before the write is allowed
        started.set()
        return unchanged, await waiting

    writer = threading.Thread(target=write)
    writer.start()
    try:
        unchanged, changed = asyncio.run(main())
    finally:
        writer.join(BOUND)
        db.dispose()
    assert not writer.is_alive(), "the writer did not finish"
    assert unchanged == before
    assert before is not None and changed == ConfigGeneration(before.epoch, before.number + 1)


def test_etag_round_trip() -> None:
    gen = ConfigGeneration("a1b2c3", 42)
    assert gen.etag == '"a1b2c3.42"'
    assert ConfigGeneration.parse(gen.etag) == gen
    assert ConfigGeneration.parse(gen.token) == gen
    for bad in ("", '"42"', "x.", "x.-1", "x.1e3", "x." + "9" * 30):
        assert ConfigGeneration.parse(bad) is None


def test_postgres_watcher_reconnects_and_misses_nothing(pg_url: str) -> None:
    from sqlalchemy import text

    open_database(pg_url, upgrade=True).dispose()
    watcher = GenerationWatcher(pg_url).start()
    db = open_database(pg_url)
    try:
        before = watcher.current_generation
        assert before is not None
        seen = Seen(watcher)
        with db.engine.begin() as conn:
            # the watcher's LISTEN session goes away; a write lands while it reconnects
            killed = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = 'gwconfig-watch'"
                )
            ).all()
        assert killed == [(True,)]
        with db.engine.begin() as conn:
            announce(conn)
        assert seen.next() == ConfigGeneration(before.epoch, before.number + 1)
        with db.engine.begin() as conn:  # and it listens again
            announce(conn)
        assert seen.next() == ConfigGeneration(before.epoch, before.number + 2)
    finally:
        watcher.stop()
        db.dispose()
