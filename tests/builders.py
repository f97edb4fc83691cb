"""Manifest builders shared by the tests: documents as dicts, manifest models, compiled configs.

``provider_doc``/``gateway_doc`` and :func:`write_manifests` give a manifest tree on disk;
``provider``/``gateway``/``config`` give canonical data for the pure planner; ``sample_config``
is a compiled configuration exercising every column, with its secrets in :data:`SECRETS`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from gwconfig.manifests.compile import CompiledConfig, build_config
from gwconfig.manifests.model import GatewayManifest, ProviderManifest


def provider_doc(pid: str = "openai", **extra: Any) -> dict[str, Any]:
    """A provider manifest document with a key, a sensitive parameter and two models."""
    doc: dict[str, Any] = {
        "apiVersion": "gwconfig/v1",
        "kind": "Provider",
        "provider_id": pid,
        "provider_type": "openai",
        "tags": ["cloud"],
        "connection": {
            "api_base": "https://api.example.com/v1",
            "parameters": [
                {"name": "organization", "value": "org-1"},
                {"name": "project", "value": {"env": "GWT_PROJECT"}, "sensitive": True},
            ],
        },
        "api_keys": [{"name": "default", "value": {"env": "GWT_API_KEY"}}],
        "models": [
            {"model_id": "m1", "context_window": 1000, "capabilities": ["vision"]},
            {"model_id": "m2", "pricing": {"input_per_1m": 1.5}},
        ],
    }
    doc.update(extra)
    return doc


def gateway_doc(**extra: Any) -> dict[str, Any]:
    """A Gateway document routing ``chat`` to openai/m1."""
    doc: dict[str, Any] = {
        "apiVersion": "gwconfig/v1",
        "kind": "Gateway",
        "default_route": "chat",
        "routes": [{"name": "chat", "targets": [{"model": "openai/m1"}]}],
    }
    doc.update(extra)
    return doc


def write_manifests(root: Path, *docs: dict[str, Any]) -> Path:
    """Write ``docs`` as one YAML file each under ``root`` (replacing what was there)."""
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("*.yaml"):
        old.unlink()
    for i, doc in enumerate(docs):
        name = doc.get("provider_id", "gateway")
        (root / f"{i:02d}-{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return root


def provider(pid: str = "openai", **extra: Any) -> ProviderManifest:
    """A provider manifest (a key, a sensitive parameter, two models), ``extra`` merged in."""
    doc: dict[str, Any] = {
        "apiVersion": "gwconfig/v1",
        "kind": "Provider",
        "provider_id": pid,
        "provider_type": "openai",
        "tags": ["prod"],
        "connection": {
            "api_base": "https://api.example.com/v1",
            "parameters": [
                {"name": "organization", "value": "org-1"},
                {"name": "project_secret", "value": {"env": "PROJ"}, "sensitive": True},
            ],
        },
        "api_keys": [{"name": "default", "value": {"env": "OPENAI_API_KEY"}}],
        "models": [
            {"model_id": "gpt-4o", "context_window": 128000, "capabilities": ["vision"]},
            {"model_id": "gpt-4o-mini"},
        ],
    }
    doc.update(extra)
    return ProviderManifest.model_validate(doc)


def gateway(**extra: Any) -> GatewayManifest:
    """A Gateway manifest routing ``chat`` to openai/gpt-4o, ``extra`` merged in."""
    doc: dict[str, Any] = {
        "apiVersion": "gwconfig/v1",
        "kind": "Gateway",
        "default_route": "chat",
        "routes": [{"name": "chat", "targets": [{"model": "openai/gpt-4o"}]}],
    }
    doc.update(extra)
    return GatewayManifest.model_validate(doc)


def resolved(config: dict[str, Any], fp: str = "hmac-sha256:aaa") -> dict[str, Any]:
    """Replace secret references by fingerprints, as the reconciler does."""
    out = copy.deepcopy(config)
    for p in out["providers"]:
        for k in p["api_keys"]:
            k["value"] = {"fingerprint": fp}
        for c in p["connection_parameters"]:
            if c["sensitive"]:
                c["value"] = {"fingerprint": fp}
    return out


def config(*providers: ProviderManifest, gw: GatewayManifest | None = None) -> dict[str, Any]:
    """The canonical data of ``providers`` and ``gw``, secrets replaced by fingerprints."""
    return resolved(dict(build_config(providers, gw).data))


SECRETS = {"OPENAI_KEY": "sk-state-test-openai", "ORG_SECRET": "org-secret-value"}


def sample_config() -> CompiledConfig:
    """Two providers with keys, plain and sensitive parameters, models, and routes."""
    openai = ProviderManifest.model_validate(
        {
            "apiVersion": "gwconfig/v1",
            "kind": "Provider",
            "provider_id": "openai",
            "provider_type": "openai",
            "tags": ["prod", "chat"],
            "deletion_protection": True,
            "connection": {
                "api_base": "https://api.openai.com/v1",
                "headers": {"X-Team": "llm"},
                "parameters": [
                    {"name": "organization", "value": {"env": "ORG_SECRET"}, "sensitive": True},
                    {"name": "retries_hint", "value": 3},
                    {"name": "beta", "value": True, "environment": "staging"},
                    {"name": "ratio", "value": 0.25},
                ],
            },
            "request_settings": {"timeout_seconds": 30, "rate_limit_rpm": 600},
            "api_keys": [
                {
                    "name": "default",
                    "value": {"env": "OPENAI_KEY"},
                    "expires_at": "2030-01-02T03:04:05Z",
                },
                {"name": "batch", "environment": "prod", "value": {"env": "OPENAI_KEY"}},
            ],
            "models": [
                {
                    "model_id": "gpt-4o",
                    "context_window": 128000,
                    "max_tokens": 16384,
                    "capabilities": ["vision", "function_calling"],
                    "pricing": {"input_per_1m": 2.5, "output_per_1m": 10.0},
                    "aliases": ["gpt4o", "omni"],
                },
                {"model_id": "GPT-4o", "display_name": "Upper-case twin", "enabled": False},
                {
                    "model_id": "text-embedding-3-small",
                    "model_type": "embedding",
                    "parameters": {"dimensions": 1536, "nested": {"a": [1, 2.5, None]}},
                },
            ],
        }
    )
    mock = ProviderManifest.model_validate(
        {
            "apiVersion": "gwconfig/v1",
            "kind": "Provider",
            "provider_id": "mock",
            "provider_type": "mock",
            "description": "Ünïcödé description",
            "models": [{"model_id": "echo"}],
        }
    )
    gateway = GatewayManifest.model_validate(
        {
            "apiVersion": "gwconfig/v1",
            "kind": "Gateway",
            "default_route": "smart",
            "routes": [
                {
                    "name": "smart",
                    "strategy": "weighted",
                    "targets": [
                        {"model": "openai/gpt-4o", "weight": 3},
                        {"model": "mock/echo"},
                    ],
                    "fallbacks": ["cheap"],
                },
                {"name": "cheap", "targets": [{"model": "mock/echo"}]},
            ],
        }
    )
    return build_config([openai, mock], gateway)


def fake_resolve(ref: Any, scope: tuple[str, str, str]) -> str:
    """Resolve ``{env: NAME}`` from the test's secret table."""
    return SECRETS[ref["env"]]
