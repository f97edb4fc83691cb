"""compile_path: canonical output, deterministic hash, sources, templates with environments."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from gwconfig.errors import ManifestError
from gwconfig.manifests import compile_path, validate_path
from gwconfig.manifests.compile import SourceRef

OPENAI = {
    "apiVersion": "gwconfig/v1",
    "kind": "Provider",
    "provider_id": "openai",
    "provider_type": "openai",
    "tags": ["cloud", "b-tag"],
    "connection": {
        "api_base": "https://api.openai.com/v1",
        "parameters": [
            {"name": "organization", "value": "org-1"},
            {"name": "project", "value": {"env": "OPENAI_PROJECT"}, "sensitive": True},
        ],
    },
    "api_keys": [
        {"name": "default", "value": {"env": "OPENAI_API_KEY"}},
        {"name": "default", "environment": "prod", "value": {"file": "/run/secrets/openai"}},
    ],
    "models": [
        {"model_id": "gpt-4o", "context_window": 128000, "capabilities": ["vision", "streaming"]},
        {"model_id": "gpt-4o-mini", "pricing": {"input_per_1m": 0.15}},
    ],
}
MOCK = {
    "apiVersion": "gwconfig/v1",
    "kind": "Provider",
    "provider_id": "mock",
    "provider_type": "mock",
    "tags": ["local"],
    "models": [{"model_id": "mock-chat", "parameters": {"reply": "hi", "latency_ms": 0}}],
}
GATEWAY = {
    "apiVersion": "gwconfig/v1",
    "kind": "Gateway",
    "default_route": "chat",
    "routes": [
        {"name": "local-chat", "targets": [{"model": "mock/mock-chat"}]},
        {
            "name": "chat",
            "targets": [{"model": "openai/gpt-4o"}, {"model": "openai/gpt-4o-mini", "weight": 2}],
            "fallbacks": ["local-chat"],
        },
    ],
}


def _shuffled(value: object, rng: random.Random) -> object:
    """The same data with every mapping's keys in a random order (lists keep their order)."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


def write_set(root: Path, files: dict[str, list[dict[str, object]]], *, comments: bool) -> Path:
    """Write documents into files under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, docs in files.items():
        text = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False)
        if comments:
            text = "# a comment\n" + text.replace("\nkind:", "\n\n# kind follows\nkind:")
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def test_compiled_hash_ignores_files_order_keys_and_comments(isolated_cwd: Path) -> None:
    base = compile_path(
        write_set(
            isolated_cwd / "one",
            {"openai.yaml": [OPENAI], "mock.yaml": [MOCK], "gateway.yaml": [GATEWAY]},
            comments=False,
        )
    )
    rng = random.Random(7)
    models = list(OPENAI["models"])  # type: ignore[call-overload]
    rng.shuffle(models)
    reordered = {**OPENAI, "models": models, "tags": ["b-tag", "cloud"]}
    other = compile_path(
        write_set(
            isolated_cwd / "two",
            {
                "z-all.yaml": [_shuffled(GATEWAY, rng), _shuffled(MOCK, rng)],  # type: ignore[list-item]
                "a/openai.yml": [_shuffled(reordered, rng)],  # type: ignore[list-item]
            },
            comments=True,
        )
    )
    assert other.content_hash == base.content_hash
    assert other.canonical_bytes() == base.canonical_bytes()


def test_changed_value_changes_hash(isolated_cwd: Path) -> None:
    files = {"openai.yaml": [OPENAI], "mock.yaml": [MOCK], "gateway.yaml": [GATEWAY]}
    base = compile_path(write_set(isolated_cwd / "one", files, comments=False))
    changed = {**MOCK, "models": [{"model_id": "mock-chat", "parameters": {"reply": "bye"}}]}
    files["mock.yaml"] = [changed]
    other = compile_path(write_set(isolated_cwd / "two", files, comments=False))
    assert other.content_hash != base.content_hash


def test_compiled_shape_defaults_and_secret_references(isolated_cwd: Path) -> None:
    root = write_set(isolated_cwd / "p", {"openai.yaml": [OPENAI]}, comments=False)
    config = compile_path(root)
    data = config.to_json_dict()
    assert data["content_hash"] == config.content_hash
    assert data["content_hash"].startswith("sha256:")
    (p,) = data["providers"]
    assert p["display_name"] == "openai"
    assert p["tags"] == ["b-tag", "cloud"]
    assert p["request_settings"]["max_retries"] == 2
    assert p["api_keys"][0]["value"] == {"env": "OPENAI_API_KEY"}
    assert p["api_keys"][1]["value"] == {"file": "/run/secrets/openai"}
    assert p["connection_parameters"][1] == {
        "name": "project",
        "environment": "default",
        "sensitive": True,
        "value": {"env": "OPENAI_PROJECT"},
    }
    assert [m["model_id"] for m in p["models"]] == ["gpt-4o", "gpt-4o-mini"]
    assert p["models"][0]["capabilities"] == ["streaming", "vision"]


def test_sources_point_at_declarations(isolated_cwd: Path) -> None:
    write_set(
        isolated_cwd / "providers.d",
        {"openai.yaml": [OPENAI], "mock.yaml": [MOCK], "gateway.yaml": [GATEWAY]},
        comments=False,
    )
    config = compile_path("providers.d")
    src = config.sources
    assert src["openai"] == SourceRef("providers.d/openai.yaml", 1, 1)
    text = (isolated_cwd / "providers.d/openai.yaml").read_text().splitlines()

    def line_of(needle: str, after: int = 0) -> int:
        return next(i for i, t in enumerate(text, 1) if i > after and needle in t)

    assert src["openai/gpt-4o-mini"].line == line_of("model_id: gpt-4o-mini")
    prod = line_of("environment: prod")
    assert src["openai/key:default@prod"].line == line_of("value:", after=prod)
    assert src["openai/param:project@default"].line == line_of("value:", line_of("name: project"))
    assert src["route:chat"].path == "providers.d/gateway.yaml"
    assert src["mock/mock-chat"].path == "providers.d/mock.yaml"


TEMPLATE = """\
apiVersion: gwconfig/v1
kind: Provider
provider_id: vllm
provider_type: openai
connection:
  api_base: {{ vars.api_base | default("http://localhost:8000/v1") }}
api_keys:
  - environment: {{ env | default("default", true) }}
    value: {env: VLLM_KEY}
models:
{%- for m in vars.models | default(["small"]) %}
  - model_id: {{ m }}
    context_window: {{ vars.context | default(4096) }}
{%- endfor %}
"""


def _template_tree(root: Path) -> None:
    (root / "providers.d").mkdir(parents=True)
    (root / "environments").mkdir()
    (root / "providers.d" / "vllm.yaml.j2").write_text(TEMPLATE)
    (root / "environments" / "dev.yaml").write_text("api_base: http://dev:8000/v1\n")
    (root / "environments" / "prod.yaml").write_text(
        "api_base: https://prod/v1\nmodels: [small, large]\ncontext: 32768\n"
    )


def test_template_renders_per_environment(isolated_cwd: Path) -> None:
    _template_tree(isolated_cwd)
    default = compile_path("providers.d")
    dev = compile_path("providers.d", env="dev")
    prod = compile_path("providers.d", env="prod")
    assert default.data["providers"][0]["connection"]["api_base"] == "http://localhost:8000/v1"
    assert dev.data["providers"][0]["connection"]["api_base"] == "http://dev:8000/v1"
    assert dev.data["providers"][0]["api_keys"][0]["environment"] == "dev"
    assert [m["model_id"] for m in prod.data["providers"][0]["models"]] == ["large", "small"]
    assert len({default.content_hash, dev.content_hash, prod.content_hash}) == 3
    assert prod.sources["vllm/large"] == SourceRef("providers.d/vllm.yaml.j2", 12, 1)


def test_template_sees_no_process_environment(
    isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_THING", "s3cr3t-from-env")
    (isolated_cwd / "providers.d").mkdir()
    (isolated_cwd / "providers.d" / "x.yaml.j2").write_text(
        "apiVersion: gwconfig/v1\nkind: Provider\nprovider_id: x\nprovider_type: mock\n"
        "description: {{ SECRET_THING }}\n"
    )
    (d,) = validate_path("providers.d")
    assert (d.path, d.line) == ("providers.d/x.yaml.j2", 5)
    assert d.message == "template error: 'SECRET_THING' is undefined"
    assert "s3cr3t" not in d.format()


def test_template_errors_name_the_template_line(isolated_cwd: Path) -> None:
    _template_tree(isolated_cwd)
    path = isolated_cwd / "providers.d" / "vllm.yaml.j2"
    path.write_text(TEMPLATE.replace("    context_window:", "    context_windw:"))
    (d,) = validate_path("providers.d", env="prod")
    assert (d.path, d.line, d.message) == (
        "providers.d/vllm.yaml.j2",
        13,
        "unknown field 'context_windw' in 'models'",
    )
    path.write_text(TEMPLATE.replace("{%- endfor %}", ""))
    (d,) = validate_path("providers.d")
    assert d.path == "providers.d/vllm.yaml.j2"
    assert d.message.startswith("template error: ")


def test_sandbox_blocks_attribute_escape(isolated_cwd: Path) -> None:
    (isolated_cwd / "providers.d").mkdir()
    (isolated_cwd / "providers.d" / "x.yaml.j2").write_text("a: 1\nb: {{ ''.__class__.__mro__ }}\n")
    (d,) = validate_path("providers.d")
    assert (d.line, d.message.startswith("template error: ")) == (2, True)
    assert "unsafe" in d.message


def test_missing_values_file(isolated_cwd: Path) -> None:
    _template_tree(isolated_cwd)
    with pytest.raises(ManifestError) as info:
        compile_path("providers.d", env="staging")
    (d,) = info.value.diagnostics
    assert d.path == "environments/staging.yaml"
    assert d.message == "values file for environment 'staging' not found"
