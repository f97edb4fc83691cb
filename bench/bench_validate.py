"""Median wall time of ``gwconfig validate`` (whole process) on the catalogue corpus.

Builds the corpus with ``bench/corpus.py`` (one YAML file per provider: x1 ~4,800 models,
x5 ~24,000 models), then runs ``gwconfig validate DIR`` in a fresh process several times per size
and prints the median, next to the target. ``--command compile`` times ``gwconfig compile``;
``--in-process`` times ``gwconfig.manifests.compile_path`` inside this process instead (what
``plan`` and ``apply`` run first), with the CPU time of this process and its forked child.

    .venv/bin/python bench/bench_validate.py            # x1 and x5, 7 runs each
    .venv/bin/python bench/bench_validate.py --scales 1 5 10 --runs 5
    .venv/bin/python bench/bench_validate.py --in-process --runs 9
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = {1: 0.5, 5: 1.0}


def corpus_dir(scale: int) -> Path:
    """The corpus of ``scale``, written once into ``bench/.corpus/x<scale>``."""
    sys.path.insert(0, str(HERE))
    from corpus import write_corpus

    out = HERE / ".corpus" / f"x{scale}"
    out.parent.mkdir(parents=True, exist_ok=True)
    (out.parent / ".gitignore").write_text("*\n")  # generated data, never committed
    marker = out / ".complete"
    if not marker.exists():
        write_corpus(out, scale)
        marker.write_text("ok\n")
    return out


def gwconfig_command() -> list[str]:
    """How to run the CLI from this interpreter (the console script when it is installed)."""
    script = Path(sys.executable).with_name("gwconfig")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from gwconfig.cli import main; main()"]


def time_runs(args: list[str], runs: int) -> list[float]:
    """Wall times of ``runs`` runs of ``args`` (each must exit 0)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return times


def in_process(scales: list[int], runs: int) -> None:
    """Median wall and CPU time of ``compile_path`` per corpus size, in this process."""
    from gwconfig.manifests import compile_path

    print(f"compile_path (in process): median of {runs} runs")
    for scale in scales:
        directory = corpus_dir(scale)
        compile_path(directory)  # warm the file system cache
        walls, cpus = [], []
        for _ in range(runs):
            gc.collect()
            before, start = os.times(), time.perf_counter()
            config = compile_path(directory)
            walls.append(time.perf_counter() - start)
            after = os.times()
            cpus.append(
                after.user
                - before.user
                + after.system
                - before.system
                + after.children_user
                - before.children_user
                + after.children_system
                - before.children_system
            )
            del config
        print(
            f"  catalogue x{scale:<3}  {statistics.median(walls):6.3f} s wall"
            f"  [min {min(walls):.3f}]  {statistics.median(cpus):6.3f} s CPU (with the child)"
        )


def main(argv: list[str] | None = None) -> int:
    """Print the median wall time per corpus size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--command", choices=["validate", "compile"], default="validate")
    parser.add_argument("--in-process", action="store_true", help="time compile_path in here")
    args = parser.parse_args(argv)
    if args.in_process:
        in_process(args.scales, args.runs)
        return 0
    base = gwconfig_command()
    examples = HERE.parent / "providers.d"
    print(f"gwconfig {args.command}: median wall time of {args.runs} runs (whole process)")
    if examples.is_dir():
        times = time_runs([*base, args.command, str(examples)], args.runs)
        print(f"  examples (providers.d):        {statistics.median(times):6.3f} s")
    for scale in args.scales:
        directory = corpus_dir(scale)
        files = sum(1 for _ in directory.glob("*.yaml"))
        extra = (
            ["-o", str(directory.parent / f"x{scale}.json")] if args.command == "compile" else []
        )
        times = time_runs([*base, args.command, str(directory), *extra], args.runs)
        target = TARGETS.get(scale)
        note = f"  (target {target:.1f} s)" if target and args.command == "validate" else ""
        print(
            f"  catalogue x{scale:<3} ({files:4d} files):  {statistics.median(times):6.3f} s"
            f"  [min {min(times):.3f}, max {max(times):.3f}]{note}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
