"""JSON Schemas of the manifest kinds, generated from the pydantic models (for editors)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from gwconfig.canonical import pretty_json
from gwconfig.manifests.consumer import ConsumerManifest
from gwconfig.manifests.model import API_VERSION, GatewayManifest, ProviderManifest

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _finish(schema: dict[str, Any], name: str, title: str) -> dict[str, Any]:
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"https://gwconfig.invalid/schemas/{name}",
        "title": title,
        **{k: v for k, v in schema.items() if k != "title"},
    }


def json_schemas() -> dict[str, bytes]:
    """File name -> JSON Schema bytes, for each kind and for any manifest document."""
    provider = ProviderManifest.model_json_schema()
    gateway = GatewayManifest.model_json_schema()
    consumer = ConsumerManifest.model_json_schema()
    any_doc = TypeAdapter(
        Annotated[
            ProviderManifest | GatewayManifest | ConsumerManifest, Field(discriminator="kind")
        ]
    ).json_schema()
    out = {
        "provider.schema.json": _finish(
            provider, "provider.schema.json", f"gwconfig {API_VERSION} Provider manifest"
        ),
        "gateway.schema.json": _finish(
            gateway, "gateway.schema.json", f"gwconfig {API_VERSION} Gateway manifest"
        ),
        "consumer.schema.json": _finish(
            consumer, "consumer.schema.json", f"gwconfig {API_VERSION} Consumer manifest"
        ),
        "manifest.schema.json": _finish(
            any_doc, "manifest.schema.json", f"gwconfig {API_VERSION} manifest (any kind)"
        ),
    }
    return {name: pretty_json(schema) for name, schema in out.items()}


def write_schemas(out_dir: Path) -> list[Path]:
    """Write every schema into ``out_dir``; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in json_schemas().items():
        target = out_dir / name
        target.write_bytes(data)
        written.append(target)
    return written


def stale_schemas(directory: Path) -> list[str]:
    """Names of schemas in ``directory`` that are missing or differ from the models."""
    stale = []
    for name, data in json_schemas().items():
        target = directory / name
        if not target.is_file() or target.read_bytes() != data:
            stale.append(name)
    return stale
