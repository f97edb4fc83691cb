"""Throughput of ``GET /api/v1/config`` answered 304, measured with ``wrk`` (16 connections).

    .venv/bin/python bench/bench_config_wrk.py [--scale 1] [--duration 10] [--runs 3]
        [--workers 1] [--skip-postgres]

Installs ``wrk`` with ``apt-get`` when it is missing (here only, never in tests), applies the
catalogue corpus (``bench/corpus.py``), starts ``gwconfig serve`` on a free loopback port, reads
the configuration's ETag once, then runs ``wrk -c 16`` with ``If-None-Match: <ETag>`` and a
``runtime`` token, so every answer is a 304 (checked: a run with any other status is reported).
Prints requests/s and the p50/p99 latency, median of ``--runs``, on SQLite and PostgreSQL
(a scratch database from ``GWCONFIG_BENCH_POSTGRES_URL`` or ``GWCONFIG_TEST_POSTGRES_URL``).
The goal is at least 2,000 requests/s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from corpus import corpus_env, write_corpus

CONNECTIONS = 16
#: wrk's Lua script: count the statuses that are not 304
STATUS_SCRIPT = """
local other = 0
response = function(status, headers, body)
  if status ~= 304 then other = other + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("non-304: %d\\n", other))
end
"""


def bench(
    name: str, url: str, args: argparse.Namespace, corpus: Path, work: Path, wrk: str
) -> None:
    """Apply the corpus to ``url``, serve it, and run wrk against the 304 path."""
    from cryptography.fernet import Fernet

    env = {**os.environ, **corpus_env(args.scale)}
    env["GWCONFIG_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    harness.run_cli(["db", "upgrade", "--database-url", url], env, work)
    harness.run_cli(["apply", str(corpus), "--auto-approve", "--database-url", url], env, work)
    token = harness.run_cli(
        ["tokens", "create", f"wrk-{name}", "--scope", "runtime", "--database-url", url], env, work
    ).strip()
    with harness.serve(url, env, work, workers=args.workers) as served:
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=served.base_url, headers=auth, timeout=120) as client:
            etags = {client.get("/api/v1/config").headers["etag"] for _ in range(args.workers * 4)}
        if len(etags) != 1:
            sys.exit(f"the workers disagree on the ETag: {etags}")
        headers = {**auth, "If-None-Match": etags.pop()}
        script = work / "status.lua"
        script.write_text(STATUS_SCRIPT)
        target = f"{served.base_url}/api/v1/config"
        harness.run_wrk(wrk, target, headers, 2, connections=CONNECTIONS, script=script)  # warm-up
        runs = [harness.run_wrk(wrk, target, headers, args.duration, connections=CONNECTIONS,
                                script=script) for _ in range(args.runs)]  # fmt: skip
    med = harness.medians(runs)
    other = sum(_non_304(r) for r in runs)
    print(
        f"{name}: GET /api/v1/config -> 304, wrk -c {CONNECTIONS}, serve --workers "
        f"{args.workers}: {med['rps']:.0f} req/s, p50 {med['p50']:.2f} ms, p99 "
        f"{med['p99']:.2f} ms (median of {args.runs} x {args.duration} s; answers other than "
        f"304: {other}; load average {harness.load_average()})"
    )


def _non_304(run: harness.WrkRun) -> int:
    """How many answers of ``run`` were not 304 (reported by :data:`STATUS_SCRIPT`)."""
    found = re.search(r"non-304: (\d+)", run.output)
    if found is None:
        raise ValueError(f"the wrk script reported nothing:\n{run.output}")
    return int(found[1])


def main() -> None:
    """Parse options, build the corpus once, measure on each engine."""
    parser = harness.arguments(__doc__, scale=1, runs=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    wrk = harness.ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="gwbench-wrk-") as tmp:
        work = Path(tmp)
        corpus = write_corpus(work / "corpus", args.scale)
        bench("sqlite", f"sqlite:///{work / 'gateway.db'}", args, corpus, work, wrk)
        if args.skip_postgres:
            return
        with harness.scratch_postgres() as url:
            if url is None:
                print("postgres: skipped (no GWCONFIG_BENCH_POSTGRES_URL or _TEST_ URL)")
                return
            bench("postgres", url, args, corpus, work, wrk)


if __name__ == "__main__":
    main()
