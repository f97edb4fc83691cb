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
Goals (issue 14): >= 1,500 req/s at 16 connections, added p50 <= 1 ms at 1 connection,
<= 200 MB per worker, no error during a reload.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
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


def ensure_tools() -> None:
    """``wrk`` and ``nginx`` on PATH (apt-get install them when missing)."""
    if shutil.which("wrk") and (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk", "nginx-light"], check=True, env=env)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_nginx(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    """nginx on 127.0.0.1 with one worker, answering the fixed completion."""
    port = free_port()
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
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(work)])
    wait_http(f"http://127.0.0.1:{port}/v1/chat/completions", method="POST")
    return proc, port


def wait_http(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> None:
    """Return once ``url`` answers (bounded: a broken start fails the bench, not hangs it)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            httpx.request(method, url, json=BODY, headers=headers, timeout=5)
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


def gwconfig(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from gwconfig.cli import main; main()", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"gwconfig {args[0]} failed:\n{done.stderr[-2000:]}")
    return done


def wrk(url: str, connections: int, duration: int, script: Path) -> dict[str, float]:
    """One wrk run: requests/s, p50 and p99 (ms), non-2xx and socket errors."""
    threads = 1 if connections == 1 else 2
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {p: _ms(re.search(rf"\s{p}%\s+([\d.]+\w+)", out).group(1)) for p in ("50", "99")}  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": rps,
        "p50": lat["50"],
        "p99": lat["99"],
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "errors": float(sum(int(g) for g in errors.groups())) if errors else 0.0,
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def median_runs(url: str, connections: int, args: Any, script: Path) -> dict[str, float]:
    runs = [wrk(url, connections, args.duration, script) for _ in range(args.runs)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


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
    """RSS (MB) of ``pid``'s child processes (uvicorn's workers)."""
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if re.search(rf"^PPid:\s+{pid}$", text, re.M) and "VmRSS" in text:
            kb = int(re.search(r"^VmRSS:\s+(\d+)", text, re.M).group(1))  # type: ignore[union-attr]
            cmdline = (status.parent / "cmdline").read_bytes().decode(errors="replace")
            if "python" in cmdline and "resource_tracker" not in cmdline:
                out.append(kb / 1024)
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=None, help="default: a scratch SQLite file")
    parser.add_argument("--access-log", action="store_true", help="keep the JSON access log on")
    args = parser.parse_args(argv)
    ensure_tools()
    from cryptography.fernet import Fernet

    with tempfile.TemporaryDirectory(prefix="gwconfig-bench-serve-") as tmp:
        work = Path(tmp)
        nginx, upstream = start_nginx(work)
        serve = None
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
            gwconfig("db", "upgrade", env=env)
            gwconfig("apply", str(root), "--auto-approve", env=env)
            print(f"applied catalogue x{args.scale} in {time.perf_counter() - t0:.1f} s")
            token = gwconfig("tokens", "create", "bench", "--scope", "invoke", env=env).stdout
            token = token.strip()
            port = free_port()
            serve_cmd = ["serve", "--workers", str(args.workers), "--port", str(port)]
            if not args.access_log:
                serve_cmd.append("--no-access-log")
            serve = subprocess.Popen(
                [sys.executable, "-c", "from gwconfig.cli import main; main()", *serve_cmd],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            gw_url = f"http://127.0.0.1:{port}/v1/chat/completions"
            auth = {"Authorization": f"Bearer {token}"}
            wait_http(gw_url, "POST", auth)
            for _ in range(200):  # warm both workers (connections spread by the kernel)
                httpx.post(gw_url, json=BODY, headers=auth, timeout=30)
            direct_url = f"http://127.0.0.1:{upstream}/v1/chat/completions"
            direct, through = lua(work, None), lua(work, token)
            print(
                f"wrk: {args.runs} runs of {args.duration} s each, median; "
                f"gwconfig serve --workers {args.workers}"
            )
            print(f"{'':24} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
            results: dict[tuple[str, int], dict[str, float]] = {}
            for conns in (1, 16):
                for name, target, script in (
                    ("direct", direct_url, direct),
                    ("gwconfig", gw_url, through),
                ):
                    r = results[(name, conns)] = median_runs(target, conns, args, script)
                    print(
                        f"{name + f' c={conns}':24} {r['rps']:>9.0f} {r['p50']:>8.3f} "
                        f"{r['p99']:>8.3f} {r['non2xx'] + r['errors']:>7.0f}"
                    )
            for conns in (1, 16):
                added = results[("gwconfig", conns)]["p50"] - results[("direct", conns)]["p50"]
                print(f"added p50 at c={conns}: {added:.3f} ms")
            rss = worker_rss(serve.pid)
            print("RSS per worker (MB): " + ", ".join(f"{v:.0f}" for v in rss))
            reload_under_load(work, args, root, upstream, env, gw_url, through)
        finally:
            if serve is not None:
                serve.send_signal(signal.SIGINT)
                serve.wait(60)
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(30)
    return 0


def reload_under_load(
    work: Path, args: Any, root: Path, upstream: int, env: dict[str, str], url: str, script: Path
) -> None:
    """wrk at 16 connections while a new revision is applied: errors seen, revision served."""
    duration = max(args.duration, 10)
    result: dict[str, float] = {}
    thread = threading.Thread(target=lambda: result.update(wrk(url, 16, duration, script)))
    thread.start()
    time.sleep(duration / 3)  # the bench, not a test: let the load settle first
    manifests(work, args.scale, upstream, reply="v2")
    t0 = time.perf_counter()
    gwconfig("apply", str(root), "--auto-approve", env=env)
    applied = time.perf_counter() - t0
    served = served_after(url.replace("/v1/chat/completions", "/readyz"))
    thread.join()
    print(
        f"reload under load (c=16, {duration} s, apply took {applied:.1f} s): "
        f"{result['rps']:.0f} req/s, {result['non2xx']:.0f} non-2xx, "
        f"{result['errors']:.0f} socket errors; new revision served "
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
