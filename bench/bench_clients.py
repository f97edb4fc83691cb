"""Clients benchmark: plain chat, streamed chat and embeddings through one gwconfig worker,
side by side with LiteLLM's proxy and Portkey's gateway, against one fixed-answer nginx.

    .venv/bin/python bench/bench_clients.py [--duration 5] [--runs 3] [--database-url URL]
        [--peers litellm,portkey] [--no-peers]

Installs ``wrk`` and ``nginx-light`` with apt-get when they are missing (this script only).
nginx on 127.0.0.1 answers ``/plain/v1/chat/completions`` with a fixed ``chat.completion``,
``/stream/v1/chat/completions`` with a fixed event stream (20 ``chat.completion.chunk``
events: the role, 17 pieces of text, the finish reason, the usage; then ``[DONE]``) and
``/plain/v1/embeddings`` with a fixed embedding of 1536 numbers. ``wrk`` (a Lua script per
scenario for the POST body) measures each scenario at 1 and 16 connections against nginx
directly, ``gwconfig serve --workers 1`` on SQLite and, with ``--database-url``, on that
PostgreSQL database (it must be empty), and each peer where it installs and runs (one
process each): LiteLLM's proxy (``pip install 'litellm[proxy]'`` into a venv under
``~/.cache/gwconfig-bench``) and Portkey's gateway (``npm install @portkey-ai/gateway`` there).
A peer that cannot be installed or run a scenario is printed with the reason. Prints the
median of ``--runs`` runs (requests/s, p50, p99, errors), the added p50 at one connection
against nginx direct, and the ratios: streamed/plain requests/s at 16 connections (target
>= 0.7), embeddings/chat (>= 0.8), added p50 at c=1 (<= 0.3 ms).
All traffic stays on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from bench_serve import ANSWER, ensure_tools, wrk

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gwconfig-bench"
KEY = "sk-" + os.urandom(24).hex()  # random, as real keys are
MESSAGES = [{"role": "user", "content": "Hello there"}]
WORDS = [
    "Hello!",
    "I",
    "am",
    "a",
    "fixed",
    "answer",
    "from",
    "nginx,",
    "streamed",
    "in",
    "pieces",
    "the",
    "way",
    "a",
    "model",
    "sends",
    "them",
]
EMBED_MODEL = "text-embedding-bench"
#: scenario -> (path under the upstream, request body); the model is each target's own name
SCENARIOS = {
    "plain": ("chat/completions", {"messages": MESSAGES}),
    "stream": ("chat/completions", {"messages": MESSAGES, "stream": True}),
    "embed": ("embeddings", {"input": "Hello there"}),
}


def sse_body() -> str:
    """The fixed event stream: role, text pieces, finish reason, usage, ``[DONE]``."""
    head = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-bench",
        "system_fingerprint": "fp_bench",
    }

    def event(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> str:
        choices = (
            []
            if delta is None
            else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        )
        return "data: " + orjson.dumps({**head, "choices": choices, "usage": usage}).decode()

    events = [event({"role": "assistant", "content": ""})]
    events += [event({"content": w + " "}) for w in WORDS[:17]]
    events.append(event({}, "stop"))
    usage = {"prompt_tokens": 9, "completion_tokens": 17, "total_tokens": 26}
    events.append(event(None, usage=usage))
    return "\n\n".join([*events, "data: [DONE]"]) + "\n\n"


def embed_body() -> str:
    """The fixed embeddings answer (one vector of 1536 numbers)."""
    vector = [round(((i * 7919) % 1000) / 1000 - 0.5, 6) for i in range(1536)]
    return orjson.dumps(
        {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": vector}],
            "model": EMBED_MODEL,
            "usage": {"prompt_tokens": 2, "total_tokens": 2},
        }
    ).decode()


def start_nginx(nginx: str, work: Path) -> tuple[subprocess.Popen[bytes], int]:
    """nginx on 127.0.0.1 (one worker) with the three fixed answers."""
    port = harness.free_port()
    answer = ANSWER.replace("'", "\\'")

    def fixed(name: str, text: str) -> str:
        """``set`` lines and a ``return`` of ``text`` (nginx takes at most 4 KiB a parameter;
        the answers hold no ``$``, quote or backslash, which nginx would read otherwise)."""
        assert not {"$", "'", "\\"} & set(text)
        pieces = [text[i : i + 3000] for i in range(0, len(text), 3000)]
        sets = " ".join(f"set ${name}{i} '{p}';" for i, p in enumerate(pieces))
        return sets + ' return 200 "' + "".join(f"${name}{i}" for i in range(len(pieces))) + '";'

    (work / "nginx.conf").write_text(
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
    location = /plain/v1/chat/completions {{
      default_type application/json; return 200 '{answer}'; }}
    location = /stream/v1/chat/completions {{
      default_type text/event-stream; {fixed("sse", sse_body())} }}
    location = /plain/v1/embeddings {{
      default_type application/json; {fixed("embed", embed_body())} }}
    location = /plain/v1/models {{ default_type application/json; return 200 '{{"data":[]}}'; }}
  }}
}}
"""
    )
    proc = subprocess.Popen([nginx, "-c", str(work / "nginx.conf"), "-p", str(work)])
    wait_ready(f"http://127.0.0.1:{port}/plain/v1/models", proc)
    return proc, port


def wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float = 120.0) -> None:
    """Return once ``url`` answers a GET below 500; RuntimeError when the process exits or
    ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode} before answering")
        try:
            if httpx.get(url, timeout=5).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {seconds:.0f} s")


def lua(work: Path, name: str, body: dict[str, Any], headers: dict[str, str]) -> Path:
    """A wrk script POSTing ``body`` with ``headers``."""
    script = work / f"{name}.lua"
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = [[{orjson.dumps(body).decode()}]]",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    return script


class Target:
    """One thing measured: a base URL, the model name per scenario, the headers per scenario."""

    def __init__(
        self, name: str, base: str, models: dict[str, str], headers: Any, log: Path | None = None
    ) -> None:
        self.name, self.base, self.models, self.headers = name, base, models, headers
        #: the process's output, whose last error line explains a failed scenario
        self.log = log

    def request(self, scenario: str) -> tuple[str, dict[str, Any], dict[str, str]]:
        """The URL, body and headers of ``scenario``."""
        path, body = SCENARIOS[scenario]
        if self.name.startswith("nginx"):  # the fixed answers themselves
            where = "stream" if scenario == "stream" else "plain"
            return f"{self.base}/{where}/v1/{path}", {**body, "model": "gpt-bench"}, {}
        return (
            f"{self.base}/{path}",
            {**body, "model": self.models[scenario]},
            self.headers(scenario),
        )


def check(target: Target, scenario: str) -> str | None:
    """Why ``target`` cannot run ``scenario`` (one request, checked), or None."""
    url, body, headers = target.request(scenario)
    try:
        resp = httpx.post(url, json=body, headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if resp.status_code != 200:
        return f"HTTP {resp.status_code}: {resp.text[:200]}"
    if scenario == "stream" and "[DONE]" not in resp.text:
        return f"not an event stream ending in [DONE]: {resp.text[:200]}"
    if scenario == "embed" and '"embedding"' not in resp.text:
        return f"no embedding in the answer: {resp.text[:200]}"
    return None


def measure(tool: str, work: Path, target: Target, args: Any, table: dict[Any, Any]) -> None:
    """Every scenario of ``target`` at 1 and 16 connections, printed as it goes."""
    for scenario in SCENARIOS:
        why = check(target, scenario)
        if why is not None:
            if target.log is not None and target.log.exists():
                lines = target.log.read_text(errors="replace").splitlines()
                errors = [line.strip() for line in lines if "Error" in line]
                why += f" (its log: {errors[-1][:200]})" if errors else ""
            print(f"{target.name:<22} {scenario:<7} not measured: {why}")
            continue
        url, body, headers = target.request(scenario)
        script = lua(work, f"{target.name}-{scenario}".replace(" ", "_"), body, headers)
        for _ in range(100):  # warm up
            httpx.post(url, json=body, headers=headers, timeout=60)
        for conns in (1, 16):
            runs = [wrk(tool, url, conns, args.duration, script) for _ in range(args.runs)]
            r = {**harness.medians(runs)}
            r["errors"] = float(sum(x.non_2xx_3xx + x.socket_errors for x in runs))
            table[(target.name, scenario, conns)] = r
            print(
                f"{target.name:<22} {scenario:<7} c={conns:<3} {r['rps']:>9.0f} "
                f"{r['p50']:>8.3f} {r['p99']:>8.3f} {r['errors']:>7.0f}",
                flush=True,
            )


@contextlib.contextmanager
def gwconfig(url: str, work: Path, upstream: int) -> Iterator[Target]:
    """``gwconfig serve --workers 1`` on the database ``url`` with providers on nginx."""
    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if not k.startswith("GWCONFIG_")}
    env.update(
        GWCONFIG_DATABASE_URL=url,
        GWCONFIG_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        BENCH_UPSTREAM_KEY=KEY,
    )
    root = work / f"manifests-{abs(hash(url))}"
    root.mkdir()
    docs = [
        provider(
            "plain",
            upstream,
            [{"model_id": "gpt-bench"}, {"model_id": EMBED_MODEL, "model_type": "embedding"}],
        ),
        provider("stream", upstream, [{"model_id": "gpt-bench"}]),
        {
            "apiVersion": "gwconfig/v1",
            "kind": "Gateway",
            "routes": [
                {"name": "chat", "targets": [{"model": "plain/gpt-bench"}]},
                {"name": "streamed", "targets": [{"model": "stream/gpt-bench"}]},
            ],
        },
    ]
    for i, doc in enumerate(docs):
        (root / f"{i}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    harness.run_cli(["db", "upgrade"], env, work)
    harness.run_cli(["apply", str(root), "--auto-approve"], env, work)
    token = harness.run_cli(["tokens", "create", "bench", "--scope", "invoke"], env, work).strip()
    with harness.serve(url, env, work, workers=1, options=["--no-access-log"]) as served:
        models = {"plain": "chat", "stream": "streamed", "embed": f"plain/{EMBED_MODEL}"}
        auth = {"Authorization": f"Bearer {token}"}
        kind = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
        yield Target(f"gwconfig ({kind})", f"{served.base_url}/v1", models, lambda _s: auth)


def provider(name: str, upstream: int, models: list[dict[str, Any]]) -> dict[str, Any]:
    """An ``openai`` provider on nginx's ``/<name>/v1``."""
    return {
        "apiVersion": "gwconfig/v1",
        "kind": "Provider",
        "provider_id": name,
        "provider_type": "openai",
        "connection": {"api_base": f"http://127.0.0.1:{upstream}/{name}/v1"},
        "api_keys": [{"name": "default", "value": {"env": "BENCH_UPSTREAM_KEY"}}],
        "request_settings": {"max_retries": 0, "timeout_seconds": 30},
        "models": models,
    }


def install(cmd: list[str], log: Path, cwd: Path | None = None) -> str | None:
    """Run an install command (bounded: 15 minutes); the reason it failed, or None."""
    try:
        with log.open("wb") as out:
            subprocess.run(
                cmd, stdout=out, stderr=subprocess.STDOUT, check=True, cwd=cwd, timeout=900
            )
    except (OSError, subprocess.SubprocessError) as exc:
        tail = log.read_text(errors="replace")[-300:] if log.exists() else ""
        return f"{' '.join(cmd[:3])} failed ({type(exc).__name__}): {tail.strip()}"
    return None


@contextlib.contextmanager
def litellm(work: Path, upstream: int) -> Iterator[Target]:
    """LiteLLM's proxy (one worker) with the three models on nginx."""
    venv = CACHE / "litellm-venv"
    exe = venv / "bin" / "litellm"
    if not exe.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        why = install([sys.executable, "-m", "venv", str(venv)], CACHE / "litellm-venv.log")
        why = why or install(
            [str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"],
            CACHE / "litellm-install.log",
        )
        if why:
            raise RuntimeError(why)
    base = f"http://127.0.0.1:{upstream}"

    def model(name: str, model_id: str, path: str) -> dict[str, Any]:
        params = {"model": f"openai/{model_id}", "api_base": f"{base}/{path}/v1", "api_key": KEY}
        return {"model_name": name, "litellm_params": params}

    master = "sk-" + os.urandom(16).hex()  # the proxy refuses to start without one
    config = {
        "general_settings": {"master_key": master},
        "model_list": [
            model("chat", "gpt-bench", "plain"),
            model("streamed", "gpt-bench", "stream"),
            model("embed", EMBED_MODEL, "plain"),
        ],
    }
    (work / "litellm.yaml").write_text(yaml.safe_dump(config))
    port = harness.free_port()
    cmd = [
        str(exe),
        "--config",
        str(work / "litellm.yaml"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    env = {
        **os.environ,
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    with running(cmd, env, work / "litellm.log", f"http://127.0.0.1:{port}/health/liveliness"):
        models = {"plain": "chat", "stream": "streamed", "embed": "embed"}
        auth = {"Authorization": f"Bearer {master}"}
        yield Target(
            "LiteLLM proxy",
            f"http://127.0.0.1:{port}/v1",
            models,
            lambda _s: auth,
            work / "litellm.log",
        )


@contextlib.contextmanager
def portkey(work: Path, upstream: int) -> Iterator[Target]:
    """Portkey's gateway (one node process), ``x-portkey-custom-host`` pointing at nginx."""
    root = CACHE / "portkey"
    start = root / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if not start.exists():
        root.mkdir(parents=True, exist_ok=True)
        why = install(
            ["npm", "install", "--silent", "@portkey-ai/gateway"],
            CACHE / "portkey-install.log",
            cwd=root,
        )
        if why:
            raise RuntimeError(why)
    port = harness.free_port()
    cmd = ["node", str(start), f"--port={port}", "--headless"]
    base = f"http://127.0.0.1:{upstream}"

    def headers(scenario: str) -> dict[str, str]:
        host = f"{base}/{'stream' if scenario == 'stream' else 'plain'}/v1"
        return {
            "x-portkey-provider": "openai",
            "x-portkey-custom-host": host,
            "Authorization": f"Bearer {KEY}",
        }

    with running(cmd, dict(os.environ), work / "portkey.log", f"http://127.0.0.1:{port}/"):
        models = {"plain": "gpt-bench", "stream": "gpt-bench", "embed": EMBED_MODEL}
        yield Target(
            "Portkey gateway", f"http://127.0.0.1:{port}/v1", models, headers, work / "portkey.log"
        )


@contextlib.contextmanager
def running(cmd: list[str], env: dict[str, str], log: Path, ready: str) -> Iterator[None]:
    """``cmd`` running (output to ``log``) once ``ready`` answers; stopped on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            try:
                wait_ready(ready, proc)
            except RuntimeError as exc:
                tail = log.read_text(errors="replace")[-300:].strip()
                raise RuntimeError(f"{exc}: {tail}") from None
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)


def ratios(table: dict[Any, Any]) -> None:
    """The issue's ratios for every target measured."""
    names = dict.fromkeys(name for name, _, _ in table)
    print(
        "\nratios (targets: streamed/plain at c=16 >= 0.7, embeddings/chat >= 0.8, "
        "added p50 at c=1 <= 0.3 ms)"
    )
    for name in names:
        if name.startswith("nginx"):
            continue
        parts = []
        plain, stream, embed = (table.get((name, s, 16)) for s in SCENARIOS)
        if plain and stream:
            parts.append(f"streamed/plain {stream['rps'] / plain['rps']:.2f}")
        if plain and embed:
            parts.append(f"embeddings/chat {embed['rps'] / plain['rps']:.2f}")
        for s in SCENARIOS:
            mine, direct = table.get((name, s, 1)), table.get(("nginx direct", s, 1))
            if mine and direct:
                parts.append(f"added p50 {s} {mine['p50'] - direct['p50']:.3f} ms")
        print(f"{name:<22} " + ", ".join(parts))


def main(argv: list[str] | None = None) -> int:
    """Run the clients benchmark and print its medians and ratios."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="wrk runs per case (median)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database")
    parser.add_argument("--peers", default="litellm,portkey", help="comma-separated peers")
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args(argv)
    tool, nginx_path = ensure_tools()
    peers = {"litellm": litellm, "portkey": portkey}
    chosen = [] if args.no_peers else [p for p in args.peers.split(",") if p in peers]
    table: dict[Any, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gwconfig-bench-clients-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx's worker (another user) reads the fixed answers in it
        nginx, upstream = start_nginx(nginx_path, work)
        try:
            print(
                f"wrk: {args.runs} runs of {args.duration} s each, median; one worker/process "
                f"each; {os.cpu_count()} CPUs; load {harness.load_average()}"
            )
            print(f"{'':22} {'':7} {'':5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
            direct = Target(
                "nginx direct",
                f"http://127.0.0.1:{upstream}",
                {"plain": "gpt-bench", "embed": EMBED_MODEL},
                lambda _s: {},
            )
            measure(tool, work, direct, args, table)
            urls = [f"sqlite:///{work / 'gateway.db'}"]
            if args.database_url:
                urls.append(args.database_url)
            for url in urls:
                with gwconfig(url, work, upstream) as target:
                    measure(tool, work, target, args, table)
            for name in chosen:
                try:
                    with peers[name](work, upstream) as target:
                        measure(tool, work, target, args, table)
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    print(f"{name}: not measured: {exc}")
            ratios(table)
        finally:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
