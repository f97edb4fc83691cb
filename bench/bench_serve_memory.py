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
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import corpus_env, write_corpus

GWCONFIG = [sys.executable, "-c", "from gwconfig.cli import main; main()"]
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


def run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """``gwconfig *args``; its stdout, or exit with its stderr."""
    done = subprocess.run([*GWCONFIG, *args], env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"gwconfig {' '.join(args[:2])} failed:\n{done.stderr}")
    return done.stdout


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    out = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            out += tree(int(child))
    return out


def memory(pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) in MiB summed over ``pid``'s process tree."""
    rss = hwm = 0
    for p in tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        if "resource_tracker" in Path(f"/proc/{p}/cmdline").read_text(errors="replace"):
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss += int(fields["VmRSS"].split()[0])
        hwm += int(fields["VmHWM"].split()[0])
    return rss / 1024, hwm / 1024


def serve_once(url: str, env: dict[str, str], cwd: Path, token: str, workers: int) -> list[float]:
    """Start a server, measure it idle and after the requests, stop it: [idle, after, peak]."""
    port = free_port()
    proc = subprocess.Popen(
        [*GWCONFIG, "serve", "--port", str(port), "--workers", str(workers), "--database-url", url],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"serve did not start:\n{proc.stderr.read() if proc.stderr else ''}")
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        while workers > 1 and len(tree(proc.pid)) < workers + 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # every worker started (parent, resource tracker, N workers)
        for path, _scope in PATHS[:1]:
            httpx.get(f"{base}{path}")
        idle, _ = memory(proc.pid)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            for _ in range(ROUNDS):
                for path, _scope in PATHS:
                    client.get(path)
        after, peak = memory(proc.pid)
        return [idle, after, peak]
    finally:
        proc.terminate()
        proc.wait(60)


def statuses(url: str, env: dict[str, str], cwd: Path, token: str) -> dict[str, int]:
    """The status of each path on a one-worker server (which endpoints this build has)."""
    port = free_port()
    proc = subprocess.Popen(
        [*GWCONFIG, "serve", "--port", str(port), "--database-url", url],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120) as c:
            return {path: c.get(path).status_code for path, _scope in PATHS}
    finally:
        proc.terminate()
        proc.wait(60)


def bench(name: str, url: str, args: argparse.Namespace, corpus: Path, work: Path) -> None:
    """Apply the corpus to ``url``, then measure ``serve`` on it."""
    env = {**os.environ, **corpus_env(args.scale)}
    from cryptography.fernet import Fernet

    env["GWCONFIG_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    run(["db", "upgrade", "--database-url", url], env, work)
    t0 = time.perf_counter()
    run(["apply", str(corpus), "--auto-approve", "--database-url", url], env, work)
    applied = time.perf_counter() - t0
    token = run(["tokens", "create", "bench", "--scope", "admin", "--database-url", url], env, work)
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


@contextmanager
def scratch_postgres() -> Iterator[str | None]:
    """A scratch PostgreSQL database URL (dropped afterwards), or None without a server."""
    base_url = os.environ.get("GWCONFIG_BENCH_POSTGRES_URL") or os.environ.get(
        "GWCONFIG_TEST_POSTGRES_URL"
    )
    if not base_url:
        yield None
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(base_url)
    name = f"gwbench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def main() -> None:
    """Parse options, build the corpus once, measure on each engine."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gwbench-serve-") as tmp:
        work = Path(tmp)
        corpus = write_corpus(work / "corpus", args.scale)
        bench("sqlite", f"sqlite:///{work / 'gateway.db'}", args, corpus, work)
        if args.skip_postgres:
            return
        with scratch_postgres() as url:
            if url is None:
                print(
                    "postgres: skipped (no GWCONFIG_BENCH_POSTGRES_URL/GWCONFIG_TEST_POSTGRES_URL)"
                )
                return
            bench("postgres", url, args, corpus, work)


if __name__ == "__main__":
    main()
