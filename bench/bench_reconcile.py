"""Reconciler benchmark: whole-process ``gwconfig apply`` / ``plan`` on the catalogue corpus.

For each engine (SQLite file; PostgreSQL when ``GWCONFIG_BENCH_POSTGRES_URL`` or
``GWCONFIG_TEST_POSTGRES_URL`` is set) and each run, on a fresh database:

1. first apply of the corpus into an empty (upgraded) database,
2. no-op plan,
3. plan, then apply, of a change to 1% of the models (their ``display_name``),

and prints the median wall time of each step over the runs, plus an in-process breakdown of the
no-op plan (compile, open, read state, resolve secrets + diff, render) and of a first apply
(total, and the part spent inside SQL statements, as seen by SQLAlchemy's cursor events).

    .venv/bin/python bench/bench_reconcile.py [--scale 5] [--runs 3] [--engines sqlite,postgres]
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus
import harness

CLI = [sys.executable, "-c", "from gwconfig.cli import main; main()"]


def write_docs(out: Path, docs: list[dict[str, Any]]) -> Path:
    """Write provider documents plus the gateway document as YAML files."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    out.mkdir(parents=True, exist_ok=True)
    for doc in docs:
        text = yaml.dump(doc, Dumper=dumper, sort_keys=False, allow_unicode=True, width=120)
        (out / f"{doc['provider_id']}.yaml").write_text(text, encoding="utf-8")
    gw = yaml.dump(corpus.gateway_document(docs), Dumper=dumper, sort_keys=False)
    (out / "gateway.yaml").write_text(gw, encoding="utf-8")
    return out


def changed_docs(
    docs: list[dict[str, Any]], share: float = 0.01
) -> tuple[list[dict[str, Any]], int]:
    """A copy of ``docs`` with ``display_name`` changed on every 1/share-th model."""
    out, n, step = [], 0, round(1 / share)
    for doc in docs:
        models = []
        for m in doc["models"]:
            n += 1
            if n % step == 0:
                m = {**m, "display_name": f"{m['model_id']} (edited)"}
            models.append(m)
        out.append({**doc, "models": models})
    return out, n // step


@contextmanager
def fresh_database(engine: str, tmp: Path) -> Iterator[str]:
    """An empty, upgraded database URL; dropped afterwards (SQLite: a new file in ``tmp``)."""
    from gwconfig.db.session import open_database

    if engine == "sqlite":
        url = f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        open_database(url, upgrade=True).dispose()
        yield url
        return
    with harness.scratch_database(engine, harness.postgres_base_url()) as url:
        open_database(url, upgrade=True).dispose()
        yield url


CPU: dict[str, list[float]] = {}


def timed(args: list[str], env: dict[str, str], name: str = "") -> float:
    """Wall time of one whole ``gwconfig`` process (fails loudly on an unexpected exit code).

    The process's user+system CPU time is recorded in ``CPU[name]`` (less sensitive to a busy
    machine than wall time).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    CPU.setdefault(name, []).append(cpu)
    if proc.returncode not in (0, 2):
        raise SystemExit(f"gwconfig {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return elapsed


def breakdown(path: Path, url: str) -> dict[str, float]:
    """In-process stage times of a no-op plan (imports already paid), one stage after another.

    The real command overlaps opening + reading the database with parsing (see
    ``compile_path(alongside=...)``); here each stage is timed alone.
    """
    from gwconfig.reconcile import planning
    from gwconfig.reconcile.commands import Context
    from gwconfig.reconcile.plan import PlanOptions, render_text
    from gwconfig.reconcile.state import read_state

    out: dict[str, float] = {}
    t = time.perf_counter()
    config = planning.compile_manifests(str(path), None)
    out["compile manifests"] = time.perf_counter() - t
    with Context(url) as ctx:
        t = time.perf_counter()
        source = ctx.read_only("planning against")
        keys = ctx.keys
        out["open database + keys"] = time.perf_counter() - t
        t = time.perf_counter()
        state = read_state(source)
        out["read state"] = time.perf_counter() - t
        t = time.perf_counter()
        desired = planning.resolve_desired(config.data, keys, sources=config.sources)
        out["resolve secrets"] = time.perf_counter() - t
        t = time.perf_counter()
        plan = planning.compute_plan(source, state, desired, PlanOptions())
        out["diff (+ drift check)"] = time.perf_counter() - t
    t = time.perf_counter()
    render_text(plan)
    out["render"] = time.perf_counter() - t
    return out


def apply_breakdown(path: Path, url: str) -> dict[str, float]:
    """In-process first apply (imports already paid): total, and time inside SQL statements."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from gwconfig.reconcile import commands
    from gwconfig.reconcile.plan import PlanOptions

    inside = [0.0]
    started: list[float] = []

    def before(*_args: Any) -> None:
        started.append(time.perf_counter())

    def after(*_args: Any) -> None:
        inside[0] += time.perf_counter() - started.pop()

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    try:
        t = time.perf_counter()
        commands.apply(str(path), url, PlanOptions(), review=lambda _p: True)
        total = time.perf_counter() - t
    finally:
        event.remove(Engine, "before_cursor_execute", before)
        event.remove(Engine, "after_cursor_execute", after)
    return {"total": total, "inside SQL statements (driver + server)": inside[0]}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print medians."""
    parser = harness.arguments(__doc__, scale=5, runs=3)
    parser.add_argument("--engines", default="sqlite,postgres")
    args = parser.parse_args(argv)
    from cryptography.fernet import Fernet

    engines = harness.select_engines(args.engines)
    secrets_env = corpus.corpus_env(args.scale)
    os.environ.update(secrets_env)
    os.environ["GWCONFIG_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    env = {**os.environ, "NO_COLOR": "1"}
    docs = corpus.provider_documents(args.scale)
    n_models = sum(len(d["models"]) for d in docs)
    with tempfile.TemporaryDirectory(prefix="gwbench-") as tmpdir:
        tmp = Path(tmpdir)
        base = write_docs(tmp / "base", docs)
        changed, n_changed = changed_docs(docs)
        edited = write_docs(tmp / "changed", changed)
        print(f"corpus x{args.scale}: {len(docs)} providers, {n_models} models; "
              f"change set: {n_changed} models; {args.runs} runs, medians")  # fmt: skip
        for engine in engines:
            times: dict[str, list[float]] = {}
            for _ in range(args.runs):
                with fresh_database(engine, tmp) as url:
                    db = ["--database-url", url]
                    steps = [
                        ("first apply (empty DB)", ["apply", str(base), "--auto-approve", *db]),
                        ("no-op plan", ["plan", str(base), *db]),
                        ("1% change: plan", ["plan", str(edited), *db]),
                        ("1% change: apply", ["apply", str(edited), "--auto-approve", *db]),
                    ]
                    for name, cmd in steps:
                        times.setdefault(name, []).append(timed(cmd, env, f"{engine}:{name}"))
                        if name == "no-op plan":  # stage breakdown while the DB matches
                            for stage, value in breakdown(base, url).items():
                                key = "  in-process no-op plan: " + stage
                                times.setdefault(key, []).append(value)
                with fresh_database(engine, tmp) as url:
                    for stage, value in apply_breakdown(base, url).items():
                        key = "  in-process first apply: " + stage
                        times.setdefault(key, []).append(value)
            print(f"\n{engine}:                                        wall (median)   CPU")
            for name, values in times.items():
                cpu = CPU.get(f"{engine}:{name}")
                extra = f"  {statistics.median(cpu):7.3f} s" if cpu else ""
                print(f"  {name:48s} {statistics.median(values):7.3f} s{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
