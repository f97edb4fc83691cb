"""Propagation: time from ``apply`` returning to every runtime process serving the new revision.

    .venv/bin/python bench/bench_config_propagation.py [--scale 1] [--applies 10]
        [--http 10] [--db 10] [--engine postgres|sqlite|both]

Applies the catalogue corpus (``bench/corpus.py``; x1 is ~4,800 models), starts ``gwconfig
serve`` and 20 runtime processes: ``--http`` of them load ``ConfigLoader("http://.../api/v1",
token=...)`` and follow the long-poll, ``--db`` of them load from the database URL and follow the
generation watcher (LISTEN/NOTIFY on PostgreSQL, the counter check on SQLite). Then ``--applies``
times: change one provider's display name in the manifests, ``apply`` (in this process), note
the time ``apply`` returned, and wait until every runtime reports (on its stdout) that it serves
the new display name. Prints the distribution of the per-process delays, for both kinds of
runtime together and apart. The goal is p99 under 1 s. PostgreSQL: a scratch database from
``GWCONFIG_BENCH_POSTGRES_URL`` or ``GWCONFIG_TEST_POSTGRES_URL`` (dropped afterwards).
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from corpus import corpus_env, write_corpus

#: a runtime process: load, follow, print "swap <display name> <wall time>" on every swap
RUNTIME = r"""
import asyncio, sys, time
from gwconfig.runtime import ConfigLoader, LLMGatewayClient

source, pid = sys.argv[1], sys.argv[2]

class Client(LLMGatewayClient):
    def swap_config(self, config):
        super().swap_config(config)
        print("swap", config.providers[pid].display_name, repr(time.time()), flush=True)

async def main():
    loader = ConfigLoader(source)
    client = Client(loader.load_config_as_object(), loader=loader)
    client.start_auto_reload(30.0)
    print("ready", client.config.providers[pid].display_name, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""
#: a safety net for one apply to reach every runtime (never the measurement)
BOUND = 120.0


class Runtime:
    """One runtime subprocess and the lines it prints."""

    def __init__(self, kind: str, source: str, pid: str, env: dict[str, str]) -> None:
        self.kind = kind
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RUNTIME, source, pid],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[list[str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.split(" "))

    def wait_for(self, word: str, name: str) -> float:
        """The wall time at which it reported serving ``name`` (``ready`` lines: 0)."""
        deadline = time.monotonic() + BOUND
        while True:
            try:
                parts = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                sys.exit(f"a {self.kind} runtime never served {name!r}")
            shown = " ".join(parts[1:-1] if word == "swap" else parts[1:]).strip()
            if parts[0] == word and shown == name:
                return float(parts[-1]) if word == "swap" else 0.0

    def stop(self) -> None:
        """Terminate it."""
        self.proc.terminate()
        self.proc.wait(30)


def set_display_name(corpus: Path, pid: str, name: str) -> None:
    """Rewrite provider ``pid``'s manifest with display name ``name``."""
    path = corpus / f"{pid}.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["display_name"] = name
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def report(name: str, delays: list[float]) -> None:
    """Print the distribution of ``delays`` (seconds) in milliseconds."""
    if not delays:
        return
    ms = [d * 1000 for d in delays]
    print(
        f"  {name:<8} n={len(ms):4d}  min {min(ms):6.0f}  p50 {statistics.median(ms):6.0f}  "
        f"p90 {percentile(ms, 0.9):6.0f}  p99 {percentile(ms, 0.99):6.0f}  "
        f"max {max(ms):6.0f} ms"
    )


def bench(engine: str, url: str, args: argparse.Namespace, corpus: Path, work: Path) -> None:
    """Apply, start serve and the runtimes, then time ``--applies`` changes."""
    from cryptography.fernet import Fernet

    env = {**os.environ, **corpus_env(args.scale)}
    env["GWCONFIG_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    env.pop("GWCONFIG_API_TOKEN", None)
    harness.run_cli(["db", "upgrade", "--database-url", url], env, work)
    pid = sorted(p.stem for p in corpus.glob("*.yaml") if p.stem != "gateway")[0]
    set_display_name(corpus, pid, "rev 0")
    harness.run_cli(["apply", str(corpus), "--auto-approve", "--database-url", url], env, work)
    token = harness.run_cli(
        ["tokens", "create", f"rt-{engine}", "--scope", "runtime", "--database-url", url], env, work
    ).strip()
    with harness.serve(url, env, work) as served:
        rt_env = {**env, "GWCONFIG_API_TOKEN": token}
        api = f"{served.base_url}/api/v1"
        runtimes = [Runtime("http", api, pid, rt_env) for _ in range(args.http)]
        runtimes += [Runtime("db", url, pid, rt_env) for _ in range(args.db)]
        try:
            delays = measure(runtimes, corpus, pid, url, env, args.applies)
        finally:
            for rt in runtimes:
                rt.stop()
    print(
        f"{engine}: x{args.scale}, {args.applies} applies, {args.http} HTTP + {args.db} "
        f"database runtimes; delay from apply returning to serving the new revision:"
    )
    load = harness.load_average()
    print(f"  (machine load average during the run: {load} on {os.cpu_count()} CPUs)")
    report("all", delays["http"] + delays["db"])
    report("http", delays["http"])
    report("database", delays["db"])


def measure(
    runtimes: list[Runtime], corpus: Path, pid: str, url: str, env: dict[str, str], applies: int
) -> dict[str, list[float]]:
    """Wait for every runtime, then ``applies`` times change, apply and time the swaps: the
    delays (seconds) by kind of runtime."""
    from gwconfig.reconcile import commands
    from gwconfig.reconcile.plan import PlanOptions

    for rt in runtimes:
        rt.wait_for("ready", "rev 0")
    time.sleep(1.0)  # let every long-poll and watcher settle before the first change
    os.environ.update(env)  # the in-process apply reads the key and the corpus secrets
    delays: dict[str, list[float]] = {"http": [], "db": []}
    for k in range(1, applies + 1):
        set_display_name(corpus, pid, f"rev {k}")
        commands.apply(str(corpus), url, PlanOptions(), review=lambda _p: True)
        returned = time.time()
        for rt in runtimes:
            delays[rt.kind].append(rt.wait_for("swap", f"rev {k}") - returned)
        time.sleep(0.2)  # runtimes back in their long-poll before the next change
    return delays


def main() -> None:
    """Parse options, build the corpus, measure on the engines asked for."""
    parser = harness.arguments(__doc__, scale=1)
    parser.add_argument("--applies", type=int, default=10)
    parser.add_argument("--http", type=int, default=10)
    parser.add_argument("--db", type=int, default=10)
    parser.add_argument("--engine", choices=("postgres", "sqlite", "both"), default="postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gwbench-prop-") as tmp:
        work = Path(tmp)
        corpus = write_corpus(work / "corpus", args.scale)
        if args.engine in ("sqlite", "both"):
            bench("sqlite", f"sqlite:///{work / 'gateway.db'}", args, corpus, work)
        if args.engine in ("postgres", "both"):
            with harness.scratch_postgres() as url:
                if url is None:
                    print("postgres: skipped (no GWCONFIG_BENCH_POSTGRES_URL or _TEST_ URL)")
                    return
                bench("postgres", url, args, corpus, work)


if __name__ == "__main__":
    main()
