"""Memory of ``gwconfig serve`` on a database holding the catalogue x5 configuration.

    .venv/bin/python bench/bench_serve_memory.py [--scale 5] [--workers 1] [--runs 3]
        [--skip-postgres]

Applies the corpus (``bench/corpus.py``, x5 is ~24,000 models) with ``gwconfig apply``, then
starts ``gwconfig serve`` in a subprocess on a free loopback port, and prints the resident
memory (RSS, summed over the server process and its workers) when idle and after a round of
requests on every endpoint the server has (``/readyz``, ``/api/v1/whoami``, and, where they
exist, ``/api/v1/config`` and ``/api/v1/providers``; a 404 endpoint is skipped), plus the peak
(``VmHWM``). Median of ``--runs`` fresh servers, on SQLite and PostgreSQL (a scratch database from
``GWCONFIG_BENCH_POSTGRES_URL`` or ``GWCONFIG_TEST_POSTGRES_URL``, dropped afterwards).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from corpus import corpus_env, write_corpus

#: (path, scope of the token used) requested after start; a 404 means "not in this build"
PATHS = (
    ("/readyz", None),
    ("/api/v1/whoami", "admin"),
    ("/api/v1/config", "admin"),
    ("/api/v1/providers?limit=100", "admin"),
    ("/api/v1/providers/openai", "admin"),
    ("/api/v1/revisions", "admin"),
)
ROUNDS = 20


def serve_once(url: str, env: dict[str, str], cwd: Path, token: str, workers: int) -> list[float]:
    """Start a server, measure it idle and after the requests, stop it: [idle, after, peak]."""
    with harness.serve(url, env, cwd, workers=workers) as served:
        deadline = time.monotonic() + harness.START_SECONDS
        while (
            workers > 1
            and len(harness.process_tree(served.proc.pid)) < workers + 2
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)  # every worker started (parent, resource tracker, N workers)
        for path, _scope in PATHS[:1]:
            httpx.get(f"{served.base_url}{path}")
        idle, _ = harness.memory(served.proc.pid)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=served.base_url, headers=headers, timeout=120) as client:
            for _ in range(ROUNDS):
                for path, _scope in PATHS:
                    client.get(path)
        after, peak = harness.memory(served.proc.pid)
        return [idle, after, peak]


def statuses(url: str, env: dict[str, str], cwd: Path, token: str) -> dict[str, int]:
    """The status of each path on a one-worker server (which endpoints this build has)."""
    with harness.serve(url, env, cwd) as served:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=served.base_url, headers=headers, timeout=120) as c:
            return {path: c.get(path).status_code for path, _scope in PATHS}


def bench(name: str, url: str, args: argparse.Namespace, corpus: Path, work: Path) -> None:
    """Apply the corpus to ``url``, then measure ``serve`` on it."""
    env = {**os.environ, **corpus_env(args.scale)}
    from cryptography.fernet import Fernet

    env["GWCONFIG_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    harness.run_cli(["db", "upgrade", "--database-url", url], env, work)
    t0 = time.perf_counter()
    harness.run_cli(["apply", str(corpus), "--auto-approve", "--database-url", url], env, work)
    applied = time.perf_counter() - t0
    token = harness.run_cli(
        ["tokens", "create", "bench", "--scope", "admin", "--database-url", url], env, work
    )
    token = token.strip()
    seen = statuses(url, env, work, token)
    results = [serve_once(url, env, work, token, args.workers) for _ in range(args.runs)]
    idle, after, peak = (statistics.median(r[i] for r in results) for i in range(3))
    print(f"{name}: applied x{args.scale} in {applied:.1f} s; endpoints: {seen}")
    print(
        f"{name}: serve --workers {args.workers} RSS idle {idle:.0f} MiB, after "
        f"{ROUNDS} rounds of requests {after:.0f} MiB, peak {peak:.0f} MiB "
        f"(median of {args.runs})"
    )


def main() -> None:
    """Parse options, build the corpus once, measure on each engine."""
    parser = harness.arguments(__doc__, scale=5, runs=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gwbench-serve-") as tmp:
        work = Path(tmp)
        corpus = write_corpus(work / "corpus", args.scale)
        bench("sqlite", f"sqlite:///{work / 'gateway.db'}", args, corpus, work)
        if args.skip_postgres:
            return
        with harness.scratch_postgres() as url:
            if url is None:
                print(
                    "postgres: skipped (no GWCONFIG_BENCH_POSTGRES_URL/GWCONFIG_TEST_POSTGRES_URL)"
                )
                return
            bench("postgres", url, args, corpus, work)


if __name__ == "__main__":
    main()
