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
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_serve_memory import GWCONFIG, free_port, run, scratch_postgres
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


def ensure_wrk() -> str:
    """The path of ``wrk``, installed from the Debian package when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (apt-get install -y wrk) ...", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is not installed and apt-get could not install it")
    return found


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk_once(
    wrk: str, url: str, headers: dict[str, str], seconds: int, script: Path
) -> dict[str, float]:
    """One wrk run: requests/s, p50 and p99 in ms, and how many answers were not 304."""
    cmd = [
        wrk,
        "-t",
        "2",
        "-c",
        str(CONNECTIONS),
        "-d",
        f"{seconds}s",
        "--latency",
        "-s",
        str(script),
    ]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    pct = {k: _ms(*re.match(r"([\d.]+)(\w+)", v).groups()) for k, v in lat.items()}  # type: ignore[union-attr]
    other = int(re.search(r"non-304: (\d+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Socket errors: (.*)", out)
    if errors:
        print(f"  wrk socket errors: {errors.group(1)}")
    return {"rps": rps, "p50": pct["50"], "p99": pct["99"], "other": other}


def bench(
    name: str, url: str, args: argparse.Namespace, corpus: Path, work: Path, wrk: str
) -> None:
    """Apply the corpus to ``url``, serve it, and run wrk against the 304 path."""
    from cryptography.fernet import Fernet

    env = {**os.environ, **corpus_env(args.scale)}
    env["GWCONFIG_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    run(["db", "upgrade", "--database-url", url], env, work)
    run(["apply", str(corpus), "--auto-approve", "--database-url", url], env, work)
    token = run(["tokens", "create", f"wrk-{name}", "--scope", "runtime", "--database-url", url],
                env, work).strip()  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        [*GWCONFIG, "serve", "--port", str(port), "--workers", str(args.workers),
         "--database-url", url],
        env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit("serve did not start")
            time.sleep(0.1)
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=auth, timeout=120) as client:
            etags = {client.get("/api/v1/config").headers["etag"] for _ in range(args.workers * 4)}
        if len(etags) != 1:
            sys.exit(f"the workers disagree on the ETag: {etags}")
        headers = {**auth, "If-None-Match": etags.pop()}
        script = work / "status.lua"
        script.write_text(STATUS_SCRIPT)
        wrk_once(wrk, f"{base}/api/v1/config", headers, 2, script)  # warm-up
        runs = [wrk_once(wrk, f"{base}/api/v1/config", headers, args.duration, script)
                for _ in range(args.runs)]  # fmt: skip
        med = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99")}
        other = sum(int(r["other"]) for r in runs)
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"{name}: GET /api/v1/config -> 304, wrk -c {CONNECTIONS}, serve --workers "
            f"{args.workers}: {med['rps']:.0f} req/s, p50 {med['p50']:.2f} ms, p99 "
            f"{med['p99']:.2f} ms (median of {args.runs} x {args.duration} s; answers other than "
            f"304: {other}; load average {load})"
        )
    finally:
        server.terminate()
        server.wait(60)


def main() -> None:
    """Parse options, build the corpus once, measure on each engine."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="gwbench-wrk-") as tmp:
        work = Path(tmp)
        corpus = write_corpus(work / "corpus", args.scale)
        bench("sqlite", f"sqlite:///{work / 'gateway.db'}", args, corpus, work, wrk)
        if args.skip_postgres:
            return
        with scratch_postgres() as url:
            if url is None:
                print("postgres: skipped (no GWCONFIG_BENCH_POSTGRES_URL or _TEST_ URL)")
                return
            bench("postgres", url, args, corpus, work, wrk)


if __name__ == "__main__":
    main()
