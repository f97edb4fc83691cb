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

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus
from bench_db import scratch_database
from gwconfig.db import open_database
from gwconfig.db.rows import insert_config
from gwconfig.db.tokens import create_token
from gwconfig.secrets.keys import EncryptionKeys, generate_key
from gwconfig.settings import mask_url

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def ensure_wrk() -> str:
    """The path of ``wrk``, installed with apt-get if needed."""
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (apt-get)...", file=sys.stderr)
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True)
        subprocess.run(install, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is not installed and apt-get could not install it")
    return found


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


def serve(url: str, port: int, workers: int, fernet: str) -> subprocess.Popen[bytes]:
    """``gwconfig serve`` on ``url`` (ready when /readyz answers)."""
    env = {**os.environ, "GWCONFIG_ENCRYPTION_KEY": fernet}
    cmd = [sys.executable, "-c", "from gwconfig.cli import main; main()", "serve",
           "--port", str(port), "--workers", str(workers), "--database-url", url]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("gwconfig serve exited at start")
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("gwconfig serve did not become ready in 60 s")


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if m is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m[1]) * _UNITS[m[2]]


def run_wrk(wrk: str, target: str, token: str, seconds: int) -> dict[str, float]:
    """One wrk run: requests/s, p50 and p99 in ms, non-2xx count."""
    out = subprocess.run(
        [wrk, "-t2", "-c16", f"-d{seconds}s", "--latency",
         "-H", f"Authorization: Bearer {token}", target],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out)[1])  # type: ignore[index]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "non2xx": float(bad[1]) if bad else 0.0}


def bench(kind: str, base: str | None, args: Any, wrk: str) -> None:
    """Load, serve and measure one engine; print each run and the medians."""
    fernet = generate_key()
    with scratch_database(kind, base) as url:
        token, pid, models = load(url, args.scale, fernet)
        pid = args.provider or pid
        port = free_port()
        proc = serve(url, port, args.workers, fernet)
        try:
            target = f"http://127.0.0.1:{port}/api/v1/providers/{pid}"
            check = httpx.get(target, headers={"Authorization": f"Bearer {token}"})
            check.raise_for_status()
            size = len(check.content)
            run_wrk(wrk, target, token, 2)  # warm-up
            runs = [run_wrk(wrk, target, token, args.seconds) for _ in range(args.runs)]
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"{kind} ({mask_url(url) if kind != 'sqlite' else 'file'}): GET /api/v1/providers/{pid} "
          f"({models} models, {size} bytes), {args.workers} workers, 16 connections")  # fmt: skip
    for r in runs:
        print(f"  {r['rps']:8.0f} req/s  p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms"
              f"  non-2xx {r['non2xx']:.0f}")  # fmt: skip
    med = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99")}
    print(f"  median {med['rps']:.0f} req/s, p50 {med['p50']:.2f} ms, p99 {med['p99']:.2f} ms")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark on SQLite and, when configured, PostgreSQL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1, help="catalogue copies (default 1)")
    parser.add_argument("--runs", type=int, default=3, help="wrk runs per engine (default 3)")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per run (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="serve workers (default 2)")
    parser.add_argument("--provider", help="provider id to fetch (default: median size)")
    parser.add_argument("--postgres-url", default=os.environ.get("GWCONFIG_TEST_POSTGRES_URL"))
    args = parser.parse_args(argv)
    wrk = ensure_wrk()
    bench("sqlite", None, args, wrk)
    if args.postgres_url:
        bench("postgres", args.postgres_url, args, wrk)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
