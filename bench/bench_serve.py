"""Serving benchmark: ``gwconfig serve --workers 2`` in front of a fixed-answer upstream.

    .venv/bin/python bench/bench_serve.py [--scale 5] [--duration 10] [--runs 3]
        [--database-url URL] [--workers 2]

Installs ``wrk`` and ``nginx-light`` with apt-get when they are missing (this script only; never
in tests). nginx on 127.0.0.1 answers every ``POST /v1/chat/completions`` with a fixed OpenAI
``chat.completion``. ``wrk`` measures, at 1 and 16 connections, the upstream directly and
``/v1/chat/completions`` of ``gwconfig serve`` with the catalogue x``scale`` configuration
applied (plus one provider pointing at nginx). Prints the median of ``--runs`` runs: requests/s,
p50 and p99 latency, added latency (through gwconfig minus direct), RSS per worker, and the
errors seen while a new revision is applied under load. Default database: a scratch SQLite
file; ``--database-url`` for PostgreSQL (an empty database).
Goals: >= 1,500 req/s at 16 connections, added p50 <= 1 ms at 1 connection,
<= 200 MB per worker, no error during a reload.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from corpus import corpus_env, write_corpus

ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
    }
).decode()
BODY = {"model": "bench", "messages": [{"role": "user", "content": "Hello there"}]}


def ensure_tools() -> tuple[str, str]:
    """The paths of ``wrk`` and ``nginx`` (apt-get installs them when missing)."""
    nginx = harness.ensure_command("nginx", "nginx-light", also=["/usr/sbin/nginx"])
    return harness.ensure_wrk(), nginx


def start_nginx(nginx: str, work: Path) -> tuple[subprocess.Popen[bytes], int]:
    """nginx on 127.0.0.1 with one worker, answering the fixed completion."""
    port = harness.free_port()
    conf = work / "nginx.conf"
    answer = ANSWER.replace("'", "\\'")
    conf.write_text(
        f"""worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/body;
  proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fastcgi;
  uwsgi_temp_path {work}/uwsgi;
  scgi_temp_path {work}/scgi;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type application/json; return 200 '{answer}'; }}
  }}
}}
"""
    )
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(work)])
    wait_http(f"http://127.0.0.1:{port}/v1/chat/completions")
    return proc, port


def wait_http(url: str) -> None:
    """Return once ``url`` answers a POST (bounded: a broken start fails the bench)."""
    deadline = time.monotonic() + harness.START_SECONDS
    while time.monotonic() < deadline:
        try:
            httpx.post(url, json=BODY, timeout=5)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def manifests(work: Path, scale: int, upstream: int, reply: str = "v1") -> Path:
    """The corpus x``scale`` plus a ``bench`` provider on nginx and a ``bench`` route."""
    root = write_corpus(work / "manifests", scale)
    bench = {
        "apiVersion": "gwconfig/v1",
        "kind": "Provider",
        "provider_id": "bench",
        "provider_type": "openai",
        "connection": {"api_base": f"http://127.0.0.1:{upstream}/v1"},
        "api_keys": [{"name": "default", "value": {"env": "BENCH_UPSTREAM_KEY"}}],
        "request_settings": {"max_retries": 0, "timeout_seconds": 30},
        "models": [
            {
                "model_id": "gpt-bench",
                # the reload changes a parameter: a new revision, the same connection
                "parameters": {"temperature": 0.5 if reply == "v1" else 0.4},
            }
        ],
    }
    (root / "bench.yaml").write_text(yaml.safe_dump(bench, sort_keys=False))
    gateway = yaml.safe_load((root / "gateway.yaml").read_text())
    gateway["routes"].append({"name": "bench", "targets": [{"model": "bench/gpt-bench"}]})
    (root / "gateway.yaml").write_text(yaml.safe_dump(gateway, sort_keys=False))
    return root


def wrk(tool: str, url: str, connections: int, seconds: int, script: Path) -> harness.WrkRun:
    """One wrk run of the Lua ``script`` (one thread at one connection, else two)."""
    threads = 1 if connections == 1 else 2
    return harness.run_wrk(
        tool, url, {}, seconds, connections=connections, threads=threads, script=script
    )


def median_runs(tool: str, url: str, connections: int, args: Any, script: Path) -> dict[str, float]:
    """The medians of ``--runs`` wrk runs, and ``errors``: non-2xx answers and socket errors
    of all of them."""
    runs = [wrk(tool, url, connections, args.duration, script) for _ in range(args.runs)]
    errors = sum(r.non_2xx_3xx + r.socket_errors for r in runs)
    return {**harness.medians(runs), "errors": float(errors)}


def lua(work: Path, token: str | None) -> Path:
    script = work / ("gw.lua" if token else "direct.lua")
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [[{orjson.dumps(BODY).decode()}]]\n"
        'wrk.headers["Content-Type"] = "application/json"\n' + auth
    )
    return script


def worker_rss(pid: int) -> list[float]:
    """RSS (MiB) of each of ``pid``'s worker processes (uvicorn's workers)."""
    rss = (harness.memory(child)[0] for child in harness.process_tree(pid)[1:])
    return sorted(v for v in rss if v > 0)  # the resource tracker counts 0


def main(argv: list[str] | None = None) -> int:
    """Run the serving benchmark and print its medians."""
    parser = harness.arguments(__doc__, scale=5, runs=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=None, help="default: a scratch SQLite file")
    parser.add_argument("--access-log", action="store_true", help="keep the JSON access log on")
    args = parser.parse_args(argv)
    tool, nginx_path = ensure_tools()
    from cryptography.fernet import Fernet

    with tempfile.TemporaryDirectory(prefix="gwconfig-bench-serve-") as tmp:
        work = Path(tmp)
        nginx, upstream = start_nginx(nginx_path, work)
        try:
            url = args.database_url or f"sqlite:///{work / 'gateway.db'}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("GWCONFIG_")}
            env.update(corpus_env(args.scale))
            env.update(
                GWCONFIG_DATABASE_URL=url,
                GWCONFIG_ENCRYPTION_KEY=Fernet.generate_key().decode(),
                BENCH_UPSTREAM_KEY="sk-bench-" + os.urandom(12).hex(),
            )
            root = manifests(work, args.scale, upstream)
            t0 = time.perf_counter()
            harness.run_cli(["db", "upgrade"], env, work)
            harness.run_cli(["apply", str(root), "--auto-approve"], env, work)
            print(f"applied catalogue x{args.scale} in {time.perf_counter() - t0:.1f} s")
            created = harness.run_cli(["tokens", "create", "bench", "--scope", "invoke"], env, work)
            token = created.strip()
            options = [] if args.access_log else ["--no-access-log"]
            with harness.serve(url, env, work, workers=args.workers, options=options) as served:
                measure(args, tool, work, root, upstream, env, served, token)
        finally:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(30)
    return 0


def measure(
    args: Any,
    tool: str,
    work: Path,
    root: Path,
    upstream: int,
    env: dict[str, str],
    served: harness.Served,
    token: str,
) -> None:
    """wrk at 1 and 16 connections, direct and through gwconfig; RSS; a reload under load."""
    gw_url = f"{served.base_url}/v1/chat/completions"
    auth = {"Authorization": f"Bearer {token}"}
    for _ in range(200):  # warm both workers (connections spread by the kernel)
        httpx.post(gw_url, json=BODY, headers=auth, timeout=30)
    direct_url = f"http://127.0.0.1:{upstream}/v1/chat/completions"
    direct, through = lua(work, None), lua(work, token)
    print(
        f"wrk: {args.runs} runs of {args.duration} s each, median; "
        f"gwconfig serve --workers {args.workers}; load {harness.load_average()}"
    )
    print(f"{'':24} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    results: dict[tuple[str, int], dict[str, float]] = {}
    for conns in (1, 16):
        for name, target, script in (
            ("direct", direct_url, direct),
            ("gwconfig", gw_url, through),
        ):
            r = results[(name, conns)] = median_runs(tool, target, conns, args, script)
            print(
                f"{name + f' c={conns}':24} {r['rps']:>9.0f} {r['p50']:>8.3f} "
                f"{r['p99']:>8.3f} {r['errors']:>7.0f}"
            )
    for conns in (1, 16):
        added = results[("gwconfig", conns)]["p50"] - results[("direct", conns)]["p50"]
        print(f"added p50 at c={conns}: {added:.3f} ms")
    rss = worker_rss(served.proc.pid)
    print("RSS per worker (MiB): " + ", ".join(f"{v:.0f}" for v in rss))
    reload_under_load(tool, work, args, root, upstream, env, gw_url, through)


def reload_under_load(
    tool: str,
    work: Path,
    args: Any,
    root: Path,
    upstream: int,
    env: dict[str, str],
    url: str,
    script: Path,
) -> None:
    """wrk at 16 connections while a new revision is applied: errors seen, revision served."""
    duration = max(args.duration, 10)
    result: list[harness.WrkRun] = []
    thread = threading.Thread(target=lambda: result.append(wrk(tool, url, 16, duration, script)))
    thread.start()
    time.sleep(duration / 3)  # the bench, not a test: let the load settle first
    manifests(work, args.scale, upstream, reply="v2")
    t0 = time.perf_counter()
    harness.run_cli(["apply", str(root), "--auto-approve"], env, work)
    applied = time.perf_counter() - t0
    served = served_after(url.replace("/v1/chat/completions", "/readyz"))
    thread.join()
    (run,) = result
    print(
        f"reload under load (c=16, {duration} s, apply took {applied:.1f} s): "
        f"{run.rps:.0f} req/s, {run.non_2xx_3xx} non-2xx, "
        f"{run.socket_errors} socket errors; new revision served "
        + (f"{served:.2f} s after apply returned" if served is not None else "NOT SEEN in 60 s")
    )


def served_after(readyz: str) -> float | None:
    """Seconds until 20 /readyz answers in a row (new connections: either worker) report the
    newest revision as the one served; None after 60 s."""
    start = time.perf_counter()
    streak = 0
    while time.perf_counter() - start < 60:
        doc = httpx.get(readyz, timeout=30).json()
        streak = streak + 1 if doc.get("revision_served") == doc.get("revision") else 0
        if streak >= 20:
            return time.perf_counter() - start
        time.sleep(0.01)
    return None


if __name__ == "__main__":
    sys.exit(main())
