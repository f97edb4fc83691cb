"""Processes meeting a fresh SQLite database at once: one creates the schema, all succeed."""

from __future__ import annotations

import multiprocessing as mp
import os
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from gwconfig.db.session import open_database, stored_revision, upgrade_url
from gwconfig.db.version import HEAD_REVISION

PROCESSES = 8
ROUNDS = 3


def _first_use(how: str, workdir: str, barrier: Barrier, results: Queue[str]) -> None:
    """One process: wait for the others, then open (and so create) the database."""
    try:
        os.chdir(workdir)
        barrier.wait(timeout=60)  # every process reaches schema creation together
        if how == "embedded default":
            db = open_database()
            revision = stored_revision(db)
            db.dispose()
        else:
            revision = upgrade_url(f"sqlite:///{workdir}/gw.db")[1].current
        results.put(f"ok {revision}")
    except Exception as exc:  # reported to the parent, which asserts on it
        results.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["embedded default", "db upgrade"])
def test_concurrent_first_use_creates_the_schema_once(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in list(os.environ):
        if var.startswith("GWCONFIG_") and not var.startswith("GWCONFIG_TEST_"):
            monkeypatch.delenv(var)
    ctx = mp.get_context("fork")  # children start with everything imported: no import skew
    for round_ in range(ROUNDS):
        workdir = tmp_path / f"round{round_}"
        workdir.mkdir()
        barrier = ctx.Barrier(PROCESSES)
        results: Queue[str] = ctx.Queue()
        procs = [
            ctx.Process(target=_first_use, args=(how, str(workdir), barrier, results))
            for _ in range(PROCESSES)
        ]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
            assert p.exitcode == 0, f"{p.name} did not exit cleanly within 60 s: {p.exitcode}"
        assert outcomes == [f"ok {HEAD_REVISION}"] * PROCESSES, outcomes
