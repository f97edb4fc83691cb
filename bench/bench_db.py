"""Gateway database benchmark: bulk-load the catalogue x5 into an empty database, read it back.

Loads ~24,000 models (one API key per provider, encrypted) with executemany into a freshly
upgraded database, then reads every gateway table back into canonical form with
``gwconfig.reconcile.state.read_state``. Prints the median of several runs per engine.

    .venv/bin/python bench/bench_db.py                       # SQLite (+ PostgreSQL if configured)
    .venv/bin/python bench/bench_db.py --postgres-url postgresql+psycopg://root@127.0.0.1/test
    .venv/bin/python bench/bench_db.py --scale 1 --runs 3 --mysql-url mysql+pymysql://root@host/test

PostgreSQL/MySQL URLs default to GWCONFIG_TEST_POSTGRES_URL / GWCONFIG_TEST_MYSQL_URL; a scratch
database is created on that server for the run and dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus
from gwconfig.db import open_database
from gwconfig.db.models import Base
from gwconfig.db.rows import insert_config
from gwconfig.reconcile.state import read_state
from gwconfig.secrets.keys import EncryptionKeys, generate_key
from gwconfig.settings import mask_url
from harness import scratch_database


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench_engine(
    kind: str,
    url: str,
    data: dict[str, Any],
    secrets: dict[str, str],
    runs: int,
    reads_per_run: int = 3,
) -> tuple[float, float, dict[str, int]]:
    """Median bulk-load and full-read times on a freshly upgraded database."""
    keys = EncryptionKeys(generate_key())

    def resolve(ref: Any, scope: tuple[str, str, str]) -> str:
        return secrets[ref["env"]]

    db = open_database(url, upgrade=True)
    loads, reads, counts, state = [], [], {}, None
    try:
        for _ in range(runs):
            with db.engine.begin() as conn:  # empty the tables (children first)
                for table in reversed(Base.metadata.sorted_tables):
                    conn.execute(table.delete())

            def load() -> dict[str, int]:
                with db.engine.begin() as conn:
                    return insert_config(conn, data, keys, resolve=resolve)

            seconds, counts = timed(load)
            loads.append(seconds)
            for _ in range(reads_per_run):

                def read() -> Any:
                    with db.engine.connect() as conn:
                        state = read_state(conn)
                    assert state.state_hash.startswith("sha256:")
                    return state

                state = None  # the previous state is freed outside the timed call
                seconds, state = timed(read)
                reads.append(seconds)
    finally:
        db.dispose()
    assert state is not None and len(state.data["providers"]) == len(data["providers"])
    return statistics.median(loads), statistics.median(reads), counts


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print medians per engine."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=5, help="catalogue copies (default 5)")
    parser.add_argument("--runs", type=int, default=5, help="load runs per engine (default 5)")
    parser.add_argument("--postgres-url", default=os.environ.get("GWCONFIG_TEST_POSTGRES_URL"))
    parser.add_argument("--mysql-url", default=os.environ.get("GWCONFIG_TEST_MYSQL_URL"))
    parser.add_argument("--no-mysql", action="store_true", help="skip MySQL/MariaDB")
    parser.add_argument("--reads", type=int, default=3, help="full reads per run (default 3)")
    args = parser.parse_args(argv)

    compiled = corpus.compiled_config(args.scale)
    data = dict(compiled.data)
    secrets = corpus.corpus_env(args.scale)
    n_models = sum(len(p["models"]) for p in data["providers"])
    print(
        f"corpus x{args.scale}: {len(data['providers'])} providers, {n_models} models, "
        f"{args.runs} runs (median; reads: {args.reads} per run)"
    )
    engines: list[tuple[str, str | None]] = [("sqlite", None)]
    if args.postgres_url:
        engines.append(("postgres", args.postgres_url))
    else:
        print("postgres: skipped (no --postgres-url / GWCONFIG_TEST_POSTGRES_URL)")
    if args.mysql_url and not args.no_mysql:
        engines.append(("mysql", args.mysql_url))
    for kind, base in engines:
        with scratch_database(kind, base) as url:
            load, read, counts = bench_engine(kind, url, data, secrets, args.runs, args.reads)
        where = mask_url(base) if base else "temporary file"
        print(
            f"{kind:8s} bulk load {load:6.3f} s   full read (read_state) {read:6.3f} s   "
            f"rows {sum(counts.values())}   [{where}]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
