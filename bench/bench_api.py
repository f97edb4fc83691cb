"""REST API throughput: ``wrk`` on ``GET /api/v1/providers/{id}`` of ``gwconfig serve``.

Loads the catalogue (x1 by default: 155 providers, ~4,800 models) into a scratch database,
starts ``gwconfig serve --workers N`` on it, and runs ``wrk`` (16 connections) against one
provider (by default the one with the median number of models; ``--provider`` picks another).
Prints requests/s and the p50/p99 latency of each run and their median, per engine. The goal on
a 2-core machine is at least 1,000 requests/s.

    .venv/bin/python bench/bench_api.py                 # SQLite (+ PostgreSQL if configured)
    .venv/bin/python bench/bench_api.py --runs 5 --workers 2 --postgres-url postgresql+psycopg://...

Installs the Debian package ``wrk`` with apt-get when it is missing (this script only).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus
import harness
from gwconfig.db import open_database
from gwconfig.db.rows import insert_config
from gwconfig.db.tokens import create_token
from gwconfig.secrets.keys import EncryptionKeys, generate_key
from gwconfig.settings import mask_url


def load(url: str, scale: int, fernet: str) -> tuple[str, str, int]:
    """Load the corpus into ``url``; (read token, median provider id, its model count)."""
    data = corpus.compiled_config(scale).data
    secrets = corpus.corpus_env(scale)
    db = open_database(url, upgrade=True)
    try:
        with db.engine.begin() as conn:
            insert_config(
                conn, data, EncryptionKeys(fernet), resolve=lambda ref, _s: secrets[ref["env"]]
            )
        token, _ = create_token(db, "bench", "read")
    finally:
        db.dispose()
    by_size = sorted(data["providers"], key=lambda p: (len(p["models"]), p["provider_id"]))
    middle = by_size[len(by_size) // 2]
    return token, middle["provider_id"], len(middle["models"])


def bench(kind: str, base: str | None, args: Any, wrk: str) -> None:
    """Load, serve and measure one engine; print each run and the medians."""
    fernet = generate_key()
    env = {**os.environ, "GWCONFIG_ENCRYPTION_KEY": fernet}
    with harness.scratch_database(kind, base) as url:
        token, pid, models = load(url, args.scale, fernet)
        pid = args.provider or pid
        auth = {"Authorization": f"Bearer {token}"}
        with harness.serve(url, env, workers=args.workers, ready_path="/readyz") as served:
            target = f"{served.base_url}/api/v1/providers/{pid}"
            check = httpx.get(target, headers=auth)
            check.raise_for_status()
            size = len(check.content)
            harness.run_wrk(wrk, target, auth, 2)  # warm-up
            runs = [harness.run_wrk(wrk, target, auth, args.seconds) for _ in range(args.runs)]
    print(f"{kind} ({mask_url(url) if kind != 'sqlite' else 'file'}): GET /api/v1/providers/{pid} "
          f"({models} models, {size} bytes), {args.workers} workers, 16 connections")  # fmt: skip
    for r in runs:
        print(f"  {r.rps:8.0f} req/s  p50 {r.p50:6.2f} ms  p99 {r.p99:6.2f} ms"
              f"  non-2xx {r.non_2xx_3xx}")  # fmt: skip
    med = harness.medians(runs)
    print(f"  median {med['rps']:.0f} req/s, p50 {med['p50']:.2f} ms, p99 {med['p99']:.2f} ms")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark on SQLite and, when configured, PostgreSQL."""
    parser = harness.arguments(__doc__, scale=1, runs=3)
    parser.add_argument("--seconds", type=int, default=10, help="seconds per run (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="serve workers (default 2)")
    parser.add_argument("--provider", help="provider id to fetch (default: median size)")
    parser.add_argument("--postgres-url", default=os.environ.get("GWCONFIG_TEST_POSTGRES_URL"))
    args = parser.parse_args(argv)
    wrk = harness.ensure_wrk()
    bench("sqlite", None, args, wrk)
    if args.postgres_url:
        bench("postgres", args.postgres_url, args, wrk)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
