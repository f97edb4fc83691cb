"""Import/verify benchmark: a back-office of the catalogue x5 (~24,000 models) on SQLite and
PostgreSQL, read by ``gwconfig import`` (whole process, secrets sealed) and ``gwconfig verify``.

For each engine: the median wall time of ``import`` into a fresh directory, of a no-op re-import
(which must write no file) and of ``verify`` against a gateway database the import was applied
to; peak memory (max RSS) of each command's process. Goals: import <= 3 s, verify <= 2 s.

    .venv/bin/python bench/bench_import.py                    # SQLite (+ PostgreSQL if configured)
    .venv/bin/python bench/bench_import.py --scale 1 --runs 3 --postgres-url postgresql+psycopg://...

The PostgreSQL URL defaults to GWCONFIG_TEST_POSTGRES_URL; a scratch database is created for the
run and dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryptography.fernet import Fernet

import backoffice_corpus
import harness
from gwconfig.secrets.keys import generate_key

#: CPU seconds (user + system) of every command run, by command name
CPU: dict[str, list[float]] = {}


def run_child(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``gwconfig ARGS`` as its own process: (seconds, peak RSS in MB from ``os.wait4``,
    stdout)."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: become gwconfig, output to files
        os.chdir(cwd)
        out = os.open("stdout.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open("stderr.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, 1)
        os.dup2(err, 2)
        code = "from gwconfig.cli import main; main()"
        os.execve(sys.executable, [sys.executable, "-c", code, *args], env)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - start
    stdout = (cwd / "stdout.txt").read_text()
    CPU.setdefault(args[0], []).append(usage.ru_utime + usage.ru_stime)
    if status != 0:
        raise SystemExit(f"gwconfig {args[0]} failed: {(cwd / 'stderr.txt').read_text()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, stdout


def bench_engine(kind: str, bo_url: str, scale: int, runs: int) -> dict[str, Any]:
    """Fill the back-office at ``bo_url``, then time import, re-import and verify."""
    legacy = Fernet.generate_key().decode()
    backoffice_corpus.create_backoffice(bo_url)
    rows, _ = backoffice_corpus.catalogue_rows(scale)
    backoffice_corpus.fill(bo_url, rows)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GWCONFIG_")}
        env.update(
            GWCONFIG_LEGACY_KEY=legacy,
            GWCONFIG_ENCRYPTION_KEY=generate_key(),
            GWCONFIG_DATABASE_URL=f"sqlite:///{work / 'gw.db'}",
        )
        run_child(["seal-keygen"], work, env)
        env["GWCONFIG_SEALING_KEY"] = (work / "sealing.key").read_text().strip()
        out = work / "providers.d"
        imports, import_rss = [], 0.0
        for _ in range(runs):
            shutil.rmtree(out, ignore_errors=True)
            seconds, rss, _ = run_child(
                ["import", "--from-url", bo_url, "--seal-to", "sealing.pub"], work, env
            )
            imports.append(seconds)
            import_rss = max(import_rss, rss)
        shutil.copy(work / "sealing.pub", out / "sealing.pub")
        noops = []
        for _ in range(runs):
            seconds, _, _ = run_child(["import", "--from-url", bo_url], work, env)
            report = (work / "stderr.txt").read_text()
            assert "0 files written," in report, report
            noops.append(seconds)
        run_child(["db", "upgrade"], work, env)
        run_child(["apply", "providers.d", "--auto-approve"], work, env)
        verifies, verify_rss = [], 0.0
        for _ in range(runs):
            seconds, rss, stdout = run_child(["verify", "--against", bo_url], work, env)
            assert "parity:" in stdout, stdout
            verifies.append(seconds)
            verify_rss = max(verify_rss, rss)
    return {
        "providers": len(rows["providers"]),
        "models": len(rows["provider_models"]),
        "import": statistics.median(imports),
        "noop": statistics.median(noops),
        "verify": statistics.median(verifies),
        "import_rss": import_rss,
        "verify_rss": verify_rss,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the medians."""
    parser = harness.arguments(__doc__, scale=5, runs=5)
    parser.add_argument("--postgres-url", default=os.environ.get("GWCONFIG_TEST_POSTGRES_URL"))
    args = parser.parse_args(argv)
    engines = [("sqlite", None)] + ([("postgres", args.postgres_url)] if args.postgres_url else [])
    for kind, base in engines:
        CPU.clear()
        with harness.scratch_database(kind, base) as url:
            r = bench_engine(kind, url, args.scale, args.runs)
        cpu = {name: statistics.median(v) for name, v in CPU.items()}
        print(
            f"{kind:8} back-office x{args.scale} ({r['providers']} providers, {r['models']} "
            f"models), median of {args.runs}: import {r['import']:.2f} s (goal <= 3 s, sealed), "
            f"no-op re-import {r['noop']:.2f} s (0 files written), verify {r['verify']:.2f} s "
            f"(goal <= 2 s); peak RSS import {r['import_rss']:.0f} MB, verify "
            f"{r['verify_rss']:.0f} MB; median CPU (user+sys) of import runs "
            f"{cpu['import']:.2f} s, verify {cpu['verify']:.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
