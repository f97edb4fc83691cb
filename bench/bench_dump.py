"""Dump benchmark: whole-process ``gwconfig dump`` of the catalogue gateway (x5: ~24,000 models).

For each engine (SQLite file; PostgreSQL when ``GWCONFIG_BENCH_POSTGRES_URL`` or
``GWCONFIG_TEST_POSTGRES_URL`` is set) the corpus is applied once into a fresh database, then:

1. ``dump`` into a new directory, secrets sealed (every API key decrypted and sealed),
2. a no-op re-dump over that directory (must write no file),
3. ``dump --secrets env`` into a new directory (no decryption),

and the median wall time of each over the runs is printed, with the peak memory (max RSS) of
the dump process.

    .venv/bin/python bench/bench_dump.py [--scale 5] [--runs 5] [--engines sqlite,postgres]
"""

from __future__ import annotations

import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus
import harness
from bench_reconcile import fresh_database, write_docs

#: the CLI, printing the process's peak RSS on stderr at exit
CLI = [
    sys.executable,
    "-c",
    "import atexit, resource, sys; atexit.register(lambda: print('peak-rss-kb', "
    "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)); "
    "from gwconfig.cli import main; main()",
]


#: user+system CPU seconds of each sealed dump process (less sensitive to a busy machine)
CPU: list[float] = []


def run(args: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in KiB, stderr) of one whole ``gwconfig`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"gwconfig {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    peak = re.search(r"peak-rss-kb (\d+)", proc.stderr)
    return elapsed, int(peak.group(1)) if peak else 0, proc.stderr


def bench_engine(engine: str, scale: int, runs: int, tmp: Path, env: dict[str, str]) -> None:
    """Fill a fresh database of ``engine`` with the corpus and time the dumps."""
    from gwconfig.reconcile import commands
    from gwconfig.reconcile.plan import PlanOptions
    from gwconfig.secrets.sealing import generate_keypair, write_public_key_text

    docs = corpus.provider_documents(scale)
    src = write_docs(tmp / f"src-{engine}", docs)
    _, pub = generate_keypair()
    pub_file = tmp / "sealing.pub"
    pub_file.write_text(write_public_key_text(pub))
    with fresh_database(engine, tmp) as url:
        os.environ.update(env)
        commands.apply(str(src), url, PlanOptions(), review=lambda _p: True)
        sealed, redump, plain, peaks, cpu = [], [], [], [], []
        for i in range(runs):
            out = tmp / f"out-{engine}-{i}"
            args = ["dump", "--database-url", url, "--out", str(out), "--seal-to", str(pub_file)]
            t, peak, err = run(args, env)
            sealed.append(t)
            cpu.append(CPU[-1])
            peaks.append(peak)
            t, _, err = run(args, env)
            if "0 files written" not in err:
                raise SystemExit(f"the no-op re-dump wrote files:\n{err}")
            redump.append(t)
            t, _, _ = run(
                ["dump", "--database-url", url, "--out", f"{out}-env", "--secrets", "env"], env
            )
            plain.append(t)
        files = list((tmp / f"out-{engine}-0").glob("*.yaml"))
        size = sum(p.stat().st_size for p in files)
        n_models = sum(len(d["models"]) for d in docs)
        print(f"{engine}: {len(docs)} providers, {n_models} models -> {len(files)} files, "
              f"{size / 1e6:.1f} MB")  # fmt: skip
        print(f"  dump (sealed)      median {statistics.median(sealed):.2f} s  "
              f"(runs: {', '.join(f'{x:.2f}' for x in sealed)}; "
              f"CPU median {statistics.median(cpu):.2f} s)")  # fmt: skip
        print(f"  no-op re-dump      median {statistics.median(redump):.2f} s  (0 files written)")
        print(f"  dump --secrets env median {statistics.median(plain):.2f} s")
        print(f"  peak memory (max RSS) of dump: {max(peaks) / 1024:.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print medians."""
    parser = harness.arguments(__doc__, scale=5, runs=5)
    parser.add_argument("--engines", default="sqlite,postgres")
    args = parser.parse_args(argv)
    from cryptography.fernet import Fernet

    engines = harness.select_engines(args.engines)
    env = {**os.environ, "GWCONFIG_ENCRYPTION_KEY": Fernet.generate_key().decode()}
    env.update(corpus.corpus_env(args.scale))
    with tempfile.TemporaryDirectory() as tmp:
        for engine in engines:
            bench_engine(engine, args.scale, args.runs, Path(tmp), env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
