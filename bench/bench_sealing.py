"""Sealing benchmark: seal/unseal per value, offline check, verify and reseal on the corpus.

Every provider of the catalogue corpus (x5: 775 providers, ~24,000 models) gets its API key
sealed; prints the median of several runs for each step.

    .venv/bin/python bench/bench_sealing.py [--scale 5] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus
from gwconfig.manifests.compile import build_config
from gwconfig.manifests.model import ProviderManifest
from gwconfig.secrets import sealed_files as sealing_files
from gwconfig.secrets import sealing


def median_seconds(fn: Callable[[], Any], runs: int) -> float:
    """Median wall time of ``runs`` calls of ``fn``."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one line per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)

    private, public = sealing.generate_keypair()
    os.environ[sealing.SEALING_KEY_ENV] = private.to_text()
    docs = corpus.provider_documents(args.scale)
    for d in docs:
        key = d["api_keys"][0]
        scope = (d["provider_id"], key["name"], "default")
        key["value"] = {"sealed": sealing.seal("bench-" + secrets.token_hex(16), scope, public)}
    config = build_config([ProviderManifest.model_validate(d) for d in docs], None)
    n = len(docs)
    blobs = [
        (d["api_keys"][0]["value"]["sealed"], (d["provider_id"], "default", "default"))
        for d in docs
    ]

    batch = 500
    t = median_seconds(
        lambda: [sealing.seal("x" * 51, s, public) for _, s in blobs[:batch]], args.runs
    )
    print(f"seal one value: {t / batch * 1e6:.1f} us (median of {args.runs} x {batch} values)")
    t = median_seconds(lambda: [sealing.unseal(b, s) for b, s in blobs[:batch]], args.runs)
    print(f"unseal one value: {t / batch * 1e6:.1f} us (median of {args.runs} x {batch} values)")

    with tempfile.TemporaryDirectory() as tmp:
        pub_dir = Path(tmp) / "providers.d"
        pub_dir.mkdir()
        (pub_dir / "sealing.pub").write_text(sealing.write_public_key_text(public))
        t = median_seconds(lambda: sealing.check_sealed_references(config, [pub_dir]), args.runs)
        print(f"check_sealed_references, {n} sealed values (offline): {t * 1e3:.1f} ms (median)")
        t = median_seconds(lambda: sealing.verify_sealed_references(config), args.runs)
        print(f"verify_sealed_references, {n} sealed values (opens all): {t * 1e3:.1f} ms (median)")

        corpus_dir = corpus.write_corpus(Path(tmp) / "manifests", args.scale)
        for d in docs:  # put the sealed keys into the written files
            path = corpus_dir / f"{d['provider_id']}.yaml"
            text = path.read_text()
            env_ref = corpus._env_name(d["provider_id"])
            path.write_text(
                text.replace(f"env: {env_ref}", f"sealed: {d['api_keys'][0]['value']['sealed']}")
            )
        new_keys = [sealing.generate_keypair() for _ in range(args.runs)]
        all_private = ",".join(k.to_text() for k, _ in [(private, public), *new_keys])
        os.environ[sealing.SEALING_KEY_ENV] = all_private
        it = iter(new_keys)

        def reseal_once() -> None:
            result = sealing_files.reseal_files([corpus_dir], next(it)[1])
            assert result.resealed == n, result

        t = median_seconds(reseal_once, args.runs)
        print(f"reseal_files, {n} values in {n + 1} files: {t * 1e3:.1f} ms (median)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
