"""Benchmark corpus: the real model catalogue turned into gwconfig provider manifests.

``provider_documents(scale)`` groups the catalogue's ~4,800 models by provider (155 providers) into
``kind: Provider`` documents; ``scale > 1`` repeats every provider under new ids (``openai-2`` ...),
so x5 is ~24,000 models. ``write_corpus`` writes one YAML file per provider plus a Gateway document;
``compiled_config`` validates and compiles without YAML (for database and runtime benchmarks).

    python bench/corpus.py --scale 5 --out bench/.corpus/x5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CATALOGUE = REPO.parent / "shared" / "data" / "model_catalogue.json"

MODEL_TYPES = {
    "chat", "completion", "responses", "embedding", "image_generation", "image_edit",
    "audio_transcription", "audio_speech", "video_generation", "realtime", "rerank",
    "moderation", "ocr", "search",
}  # fmt: skip
PROVIDER_TYPES = {"openai": "openai", "azure": "azure_openai", "anthropic": "anthropic"}


def catalogue_path() -> Path:
    """Where the catalogue is: ``GWCONFIG_CATALOGUE`` or ``../shared/data/model_catalogue.json``."""
    return Path(os.environ.get("GWCONFIG_CATALOGUE", DEFAULT_CATALOGUE))


@cache
def load_catalogue() -> dict[str, Any]:
    """The raw catalogue (model id -> entry)."""
    with open(catalogue_path(), encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    data.pop("sample_spec", None)
    return data


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, float) and value > 0:
        return int(value)
    return None


def _per_million(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(f"{value * 1_000_000:.10g}")
    return None


def _strip_prefix(model_id: str, provider: str) -> str:
    prefix = provider + "/"
    return model_id[len(prefix) :] if model_id.startswith(prefix) else model_id


def _env_name(provider_id: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", provider_id.upper()) + "_API_KEY"


def _model(model_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    context = _int(entry.get("max_input_tokens"))
    max_tokens = _int(entry.get("max_output_tokens"))
    if context is not None and max_tokens is not None and max_tokens > context:
        max_tokens = context
    mode = entry.get("mode")
    doc: dict[str, Any] = {
        "model_id": model_id,
        "model_type": mode if mode in MODEL_TYPES else "other",
    }
    if context is not None:
        doc["context_window"] = context
    if max_tokens is not None:
        doc["max_tokens"] = max_tokens
    caps = sorted(
        k.removeprefix("supports_") for k, v in entry.items() if k.startswith("supports_") and v
    )
    if caps:
        doc["capabilities"] = caps
    pricing = {
        "input_per_1m": _per_million(entry.get("input_cost_per_token")),
        "output_per_1m": _per_million(entry.get("output_cost_per_token")),
        "cached_input_per_1m": _per_million(entry.get("cache_read_input_token_cost")),
    }
    pricing = {k: v for k, v in pricing.items() if v is not None}
    if pricing:
        doc["pricing"] = pricing
    if entry.get("deprecation_date"):
        doc["parameters"] = {"deprecation_date": str(entry["deprecation_date"])}
    return doc


@cache
def _base_providers() -> tuple[tuple[str, tuple[dict[str, Any], ...]], ...]:
    cat = load_catalogue()
    grouped: dict[str, dict[str, dict[str, Any]]] = {}
    aliases: list[tuple[str, str]] = []
    for key, entry in cat.items():
        if "alias_of" in entry:
            aliases.append((key, entry["alias_of"]))
            continue
        provider = entry.get("litellm_provider")
        if not isinstance(provider, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", provider):
            continue
        model_id = _strip_prefix(key, provider)
        grouped.setdefault(provider, {}).setdefault(model_id, _model(model_id, entry))
    # alias entries: "bedrock/claude-latest" -> "global.anthropic.claude-5": attach to the target
    owner = {
        key: (entry["litellm_provider"], _strip_prefix(key, entry["litellm_provider"]))
        for key, entry in cat.items()
        if "litellm_provider" in entry and entry["litellm_provider"] in grouped
    }
    seen: set[str] = set()
    for alias, target in aliases:
        if target not in owner:
            continue
        provider, model_id = owner[target]
        name = _strip_prefix(alias, alias.split("/", 1)[0]) if "/" in alias else alias
        name = f"{provider}:{name}"
        if name in seen:
            continue
        seen.add(name)
        model = grouped[provider][model_id]
        model["aliases"] = sorted({*model.get("aliases", ()), name})
    return tuple(
        (provider, tuple(models[m] for m in sorted(models)))
        for provider, models in sorted(grouped.items())
    )


def provider_documents(scale: int = 1) -> list[dict[str, Any]]:
    """``kind: Provider`` manifest dicts for the catalogue repeated ``scale`` times."""
    docs: list[dict[str, Any]] = []
    for copy in range(1, scale + 1):
        for provider, models in _base_providers():
            pid = provider if copy == 1 else f"{provider}-{copy}"
            suffix = "" if copy == 1 else f"-{copy}"
            model_docs = []
            for m in models:
                m2 = dict(m)
                if "aliases" in m2:
                    m2["aliases"] = [a + suffix for a in m2["aliases"]]
                model_docs.append(m2)
            docs.append(
                {
                    "apiVersion": "gwconfig/v1",
                    "kind": "Provider",
                    "provider_id": pid,
                    "provider_type": PROVIDER_TYPES.get(provider, "openai"),
                    "display_name": f"{provider} (catalogue copy {copy})",
                    "description": "Generated from the LiteLLM model catalogue for benchmarks.",
                    "tags": ["catalogue", f"copy-{copy}"],
                    "connection": {"api_base": f"https://{provider.replace('_', '-')}.example/v1"},
                    "request_settings": {"timeout_seconds": 120, "max_retries": 3},
                    "api_keys": [{"name": "default", "value": {"env": _env_name(pid)}}],
                    "models": model_docs,
                }
            )
    return docs


def gateway_document(providers: list[dict[str, Any]]) -> dict[str, Any]:
    """A Gateway document with a few routes over the corpus's chat models."""
    chat = [
        (p["provider_id"], m["model_id"])
        for p in providers[:40]
        for m in p["models"][:2]
        if m["model_type"] == "chat"
    ]
    routes = [
        {
            "name": f"route-{i}",
            "targets": [{"model": f"{pid}/{mid}"} for pid, mid in chat[i : i + 3]],
        }
        for i in range(0, max(len(chat) - 3, 0), 3)
    ]
    return {
        "apiVersion": "gwconfig/v1",
        "kind": "Gateway",
        "default_route": routes[0]["name"] if routes else None,
        "routes": routes,
    }


def write_corpus(out_dir: str | Path, scale: int = 1) -> Path:
    """Write one YAML file per provider plus ``gateway.yaml`` into ``out_dir``; return it."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.yaml"):
        old.unlink()
    docs = provider_documents(scale)
    for doc in docs:
        text = yaml.dump(doc, Dumper=dumper, sort_keys=False, allow_unicode=True, width=120)
        (out / f"{doc['provider_id']}.yaml").write_text(text, encoding="utf-8")
    gw = yaml.dump(gateway_document(docs), Dumper=dumper, sort_keys=False)
    (out / "gateway.yaml").write_text(gw, encoding="utf-8")
    return out


def compiled_config(scale: int = 1) -> Any:
    """The corpus validated by the schema and compiled (a ``CompiledConfig``), without YAML."""
    from gwconfig.manifests.compile import build_config
    from gwconfig.manifests.model import GatewayManifest, ProviderManifest

    docs = provider_documents(scale)
    providers = [ProviderManifest.model_validate(d) for d in docs]
    gateway = GatewayManifest.model_validate(gateway_document(docs))
    return build_config(providers, gateway)


def corpus_env(scale: int = 1) -> dict[str, str]:
    """Environment variables holding a run-time generated API key for every corpus provider."""
    import secrets

    return {
        d["api_keys"][0]["value"]["env"]: "bench-" + secrets.token_hex(16)
        for d in provider_documents(scale)
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: write a corpus directory and print its size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--out", default=None, help="default: bench/.corpus/x<scale>")
    args = parser.parse_args(argv)
    out = write_corpus(args.out or REPO / "bench" / ".corpus" / f"x{args.scale}", args.scale)
    docs = provider_documents(args.scale)
    n_models = sum(len(d["models"]) for d in docs)
    size = sum(p.stat().st_size for p in out.glob("*.yaml"))
    print(f"{out}: {len(docs)} providers, {n_models} models, {size / 1e6:.1f} MB of YAML")
    return 0


if __name__ == "__main__":
    sys.exit(main())
