"""Shared plumbing of the bench scripts: CLI, scratch databases, ``gwconfig serve``, wrk, RSS.

Import it the way the scripts import ``corpus`` (``sys.path.insert(0, <bench dir>)``, then
``import harness``). It holds what more than one script needs, so that each script is only its
scenario and its report:

- :func:`arguments`: the options every script has (``--scale``, ``--runs``);
- :func:`run_cli` runs ``gwconfig`` as a subprocess (:data:`GWCONFIG`), :func:`free_port`;
- :func:`scratch_database` / :func:`scratch_postgres` / :func:`select_engines`: a fresh
  database per engine (PostgreSQL from ``GWCONFIG_BENCH_POSTGRES_URL`` or
  ``GWCONFIG_TEST_POSTGRES_URL``, dropped afterwards);
- :func:`serve`: ``gwconfig serve`` on a free loopback port, ready when ``/healthz`` (or another
  path) answers 200, stopped on exit;
- :func:`ensure_command` / :func:`ensure_wrk` (apt-get installs), :func:`run_wrk` and
  :class:`WrkRun`: one ``wrk`` run and its figures,
  :func:`medians` of several;
- :func:`process_tree`, :func:`memory`: resident memory of a server and its workers;
- :func:`load_average`: the machine's load, printed beside timings on a shared machine.
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
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: ``gwconfig`` as a subprocess of this interpreter (no console script needed)
GWCONFIG = [sys.executable, "-c", "from gwconfig.cli import main; main()"]
#: safety net for a server to start (never a measurement)
START_SECONDS = 120.0


def arguments(doc: str | None, *, scale: int, runs: int | None = None) -> argparse.ArgumentParser:
    """A parser described by the first line of the script's ``doc``, with the options every
    script has: ``--scale`` (catalogue copies, see ``corpus.py``) and, with a default,
    ``--runs`` (runs per engine; the script prints their median)."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument(
        "--scale", type=int, default=scale, help=f"catalogue copies (default {scale})"
    )
    if runs is not None:
        parser.add_argument(
            "--runs", type=int, default=runs, help=f"runs per engine (default {runs})"
        )
    return parser


def run_cli(args: list[str], env: Mapping[str, str], cwd: Path) -> str:
    """``gwconfig *args`` in ``cwd``; its stdout, or exit with its stderr."""
    done = subprocess.run(
        [*GWCONFIG, *args], env=dict(env), cwd=cwd, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"gwconfig {' '.join(args[:2])} failed:\n{done.stderr}")
    return done.stdout


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def postgres_base_url() -> str | None:
    """The PostgreSQL server to make scratch databases on: ``GWCONFIG_BENCH_POSTGRES_URL``, else
    ``GWCONFIG_TEST_POSTGRES_URL``, else None."""
    return os.environ.get("GWCONFIG_BENCH_POSTGRES_URL") or os.environ.get(
        "GWCONFIG_TEST_POSTGRES_URL"
    )


@contextmanager
def scratch_database(kind: str, base_url: str | None) -> Iterator[str]:
    """A fresh empty database URL of ``kind`` (``sqlite``, ``postgres``, ``mysql``) on the server
    of ``base_url`` (unused for SQLite: a file in a temporary directory); dropped afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    assert base_url is not None
    base = make_url(base_url)
    name = f"gwbench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            force = " WITH (FORCE)" if kind == "postgres" else ""
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))
        admin.dispose()


@contextmanager
def scratch_postgres() -> Iterator[str | None]:
    """A scratch PostgreSQL database URL (see :func:`postgres_base_url`), or None without one."""
    base_url = postgres_base_url()
    if not base_url:
        yield None
        return
    with scratch_database("postgres", base_url) as url:
        yield url


def select_engines(spec: str) -> list[str]:
    """The engines of a ``--engines sqlite,postgres`` option; ``postgres`` is dropped (and said
    so) when no PostgreSQL server is configured."""
    engines = [e for e in spec.split(",") if e]
    if "postgres" in engines and not postgres_base_url():
        print("postgres: skipped (set GWCONFIG_BENCH_POSTGRES_URL or GWCONFIG_TEST_POSTGRES_URL)")
        engines.remove("postgres")
    return engines


@dataclass(frozen=True)
class Served:
    """A running ``gwconfig serve``: its process and base URL (``http://127.0.0.1:PORT``)."""

    proc: subprocess.Popen[bytes]
    base_url: str


@contextmanager
def serve(
    url: str,
    env: Mapping[str, str],
    cwd: Path | None = None,
    *,
    workers: int = 1,
    ready_path: str = "/healthz",
    options: Sequence[str] = (),
) -> Iterator[Served]:
    """``gwconfig serve --workers N --database-url URL *options`` on a free loopback port,
    yielded once ``ready_path`` answers 200 (exits with the server's stderr if it stops or is
    not ready in :data:`START_SECONDS`); terminated on exit. Its stderr goes to a temporary
    file (a pipe nobody reads could fill up and block the server)."""
    import httpx

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [*GWCONFIG, "serve", "--port", str(port), "--workers", str(workers),
           "--database-url", url, *options]  # fmt: skip
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=dict(env), cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + START_SECONDS
            while True:
                try:
                    if httpx.get(f"{base}{ready_path}", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    err.seek(0)
                    tail = err.read().decode(errors="replace")[-2000:]
                    sys.exit(f"gwconfig serve did not become ready:\n{tail}")
                time.sleep(0.1)
            yield Served(proc, base)
        finally:
            proc.terminate()
            proc.wait(60)


def ensure_command(name: str, package: str, *, also: Sequence[str] = ()) -> str:
    """The path of command ``name``, installed from the Debian ``package`` when missing
    (benchmarks only, never tests); ``also`` are places to look outside ``PATH``."""
    found = shutil.which(name) or next((p for p in also if Path(p).exists()), None)
    if found:
        return found
    print(f"installing {name} (apt-get install -y {package}) ...", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", package]
    if subprocess.run(install, capture_output=True, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
        subprocess.run(install, capture_output=True, env=env)
    found = shutil.which(name) or next((p for p in also if Path(p).exists()), None)
    if not found:
        sys.exit(f"{name} is not installed and apt-get could not install {package}")
    return found


def ensure_wrk() -> str:
    """The path of ``wrk`` (see :func:`ensure_command`)."""
    return ensure_command("wrk", "wrk")


@dataclass(frozen=True)
class WrkRun:
    """The figures of one wrk run (latencies in ms) and its whole output (for Lua reports)."""

    rps: float
    p50: float
    p99: float
    #: answers wrk counted as "Non-2xx or 3xx"
    non_2xx_3xx: int
    output: str
    #: connect, read, write and timeout errors, added up
    socket_errors: int = 0


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if m is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m[1]) * _UNITS[m[2]]


def run_wrk(
    wrk: str,
    url: str,
    headers: Mapping[str, str],
    seconds: int,
    *,
    connections: int = 16,
    threads: int = 2,
    script: Path | None = None,
) -> WrkRun:
    """One ``wrk --latency`` run against ``url`` with ``headers`` (and a Lua ``script``); socket
    errors are printed."""
    cmd = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"\s50%\s+(\S+)", out)
    p99 = re.search(r"\s99%\s+(\S+)", out)
    if rps is None or p50 is None or p99 is None:
        raise ValueError(f"unexpected wrk output:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if errors:
        print(f"  wrk socket errors: {errors[1]}")
    failed = sum(int(n) for n in re.findall(r"\d+", errors[1])) if errors else 0
    return WrkRun(float(rps[1]), _ms(p50[1]), _ms(p99[1]), int(bad[1]) if bad else 0, out, failed)


def medians(runs: Iterable[WrkRun]) -> dict[str, float]:
    """The median requests/s, p50 and p99 of several runs."""
    done = list(runs)
    return {k: statistics.median(getattr(r, k) for r in done) for k in ("rps", "p50", "p99")}


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux ``/proc``)."""
    out = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            out += process_tree(int(child))
    return out


def memory(pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) in MiB summed over ``pid``'s process tree (multiprocessing's resource
    tracker left out)."""
    rss = hwm = 0
    for p in process_tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
            cmdline = Path(f"/proc/{p}/cmdline").read_text(errors="replace")
        except OSError:
            continue
        if "resource_tracker" in cmdline:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss += int(fields["VmRSS"].split()[0])
        hwm += int(fields["VmHWM"].split()[0])
    return rss / 1024, hwm / 1024


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``"1.2, 0.9, 0.7"``."""
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())
