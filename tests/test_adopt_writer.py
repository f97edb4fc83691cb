"""The manifest writer: canonical data -> YAML a person would write, that compiles back the same."""

from __future__ import annotations

import copy
import secrets as random_secrets
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gwconfig.adopt import SecretOutput, render_manifests, secret_output, write_tree, yamlout
from gwconfig.adopt.writer import env_name, file_names
from gwconfig.entities import SecretScope
from gwconfig.errors import ConfigurationError, SealingError
from gwconfig.manifests import compile_path, validate_path
from gwconfig.manifests.yamlparse.loader import load_yaml
from gwconfig.secrets.sealing import generate_keypair, open_blob, write_public_key_text

REPO = Path(__file__).resolve().parent.parent


def secrets_of(data: dict[str, Any], value: str | None = None) -> dict[SecretScope, str]:
    """A fresh random plaintext for every secret of ``data``."""
    out: dict[SecretScope, str] = {}
    for p in data["providers"]:
        for k in p["api_keys"]:
            scope = SecretScope.of("api_key", p["provider_id"], k)
            out[scope] = value or "sk-" + random_secrets.token_hex(16)
        for c in p["connection_parameters"]:
            if c["sensitive"]:
                scope = SecretScope.of("connection_parameter", p["provider_id"], c)
                out[scope] = value or "p-" + random_secrets.token_hex(8)
    return out


def without_secret_values(data: Any) -> Any:
    """``data`` with every secret's value blanked (they differ by design: refs vs. plaintext)."""
    data = copy.deepcopy(dict(data))
    for p in data["providers"]:
        for k in p["api_keys"]:
            k["value"] = None
        for c in p["connection_parameters"]:
            if c["sensitive"]:
                c["value"] = None
    return data


def write_and_compile(
    data: dict[str, Any], out: Path, output: SecretOutput, pub_text: str | None = None
) -> tuple[dict[str, Any], dict[SecretScope, str]]:
    plain = secrets_of(data)
    rendered = render_manifests(data, plain, output)
    write_tree(rendered.files, out)
    if pub_text is not None:
        (out / "sealing.pub").write_text(pub_text, encoding="utf-8")
    assert validate_path(out) == []
    return dict(compile_path(out).data), plain


def examples() -> dict[str, Any]:
    return dict(compile_path(REPO / "providers.d").data)


def test_examples_round_trip_sealed(tmp_path: Path) -> None:
    data = examples()
    priv, pub = generate_keypair()
    back, plain = write_and_compile(
        data, tmp_path / "out", SecretOutput("sealed", pub), write_public_key_text(pub)
    )
    assert without_secret_values(back) == without_secret_values(data)
    keys = {pub.key_id: priv}
    for p in back["providers"]:
        for k in p["api_keys"]:
            scope = SecretScope.of("api_key", p["provider_id"], k)
            assert open_blob(k["value"]["sealed"], keys) == (scope.sealed, plain[scope])


def test_examples_round_trip_env(tmp_path: Path) -> None:
    data = examples()
    plain = secrets_of(data)
    rendered = render_manifests(data, plain, SecretOutput("env"))
    write_tree(rendered.files, tmp_path / "out")
    back = compile_path(tmp_path / "out").data
    assert without_secret_values(back) == without_secret_values(data)
    names = [n for n, _ in rendered.env_names]
    assert len(names) == len(set(names)) == len(plain)
    assert ("GW_OPENAI_KEY_DEFAULT_PROD", "provider openai key default environment prod") in (
        rendered.env_names
    )
    assert "GW_OPENAI_PARAM_PROJECT" in names
    text = b"".join(rendered.files.values())
    assert all(v.encode() not in text for v in plain.values())


def test_house_style(tmp_path: Path) -> None:
    files = render_manifests(examples(), {}, SecretOutput("env")).files
    assert sorted(files) == [
        "anthropic.yaml", "azure-openai-eu.yaml", "consumers.yaml", "gateway.yaml", "mock.yaml",
        "openai.yaml", "vllm.yaml",
    ]  # fmt: skip
    text = files["anthropic.yaml"].decode()
    assert text.startswith("# yaml-language-server: $schema=../schemas/provider.schema.json\n")
    assert 'api_version: "2023-06-01"\n' in text
    assert "tags: [anthropic, cloud]\n" in text
    assert "pricing: {input_per_1m: 3.0, output_per_1m: 15.0, cached_input_per_1m: 0.3}" in text
    assert "    value: {env: GW_ANTHROPIC_KEY_DEFAULT}\n" in text
    assert 'expires_at: "2031-01-31T00:00:00Z"' in text
    # defaults are not spelled out
    for default in ("enabled:", "model_type: chat", "environment: default", "max_retries: 2"):
        assert default not in text
    assert "timeout_seconds: 120\n" in text
    data = examples()
    data["providers"][0]["description"] = "First line.\nSecond: line."
    text = render_manifests(data, {}, SecretOutput("env")).files["anthropic.yaml"].decode()
    assert "description: |-\n  First line.\n  Second: line.\nenabled" not in text
    assert "description: |-\n  First line.\n  Second: line.\ntags: [anthropic, cloud]\n" in text
    gateway = files["gateway.yaml"].decode()
    assert gateway.startswith("# yaml-language-server: $schema=../schemas/gateway.schema.json\n")
    assert "strategy: fallback" not in gateway and "weight: 1\n" not in gateway


def test_no_gateway_document_without_routes() -> None:
    data = examples()
    data["gateway"] = {"default_route": None, "routes": []}
    files = render_manifests(data, secrets_of(data), SecretOutput("env")).files
    assert "gateway.yaml" not in files


def test_same_input_same_bytes_and_stable_sealing(tmp_path: Path) -> None:
    data = examples()
    _, pub = generate_keypair()
    plain = secrets_of(data)
    one = render_manifests(data, plain, SecretOutput("sealed", pub)).files
    two = render_manifests(copy.deepcopy(data), dict(plain), SecretOutput("sealed", pub)).files
    assert one == two
    first = write_tree(one, tmp_path / "out")
    assert first.written == sorted(one) and not first.unchanged
    again = write_tree(two, tmp_path / "out")
    assert again.written == [] and again.unchanged == sorted(one) and again.removed == []
    # a changed key changes its file only, and only the line of that key
    scope = next(s for s in plain if s.provider_id == "anthropic")
    changed = render_manifests(data, {**plain, scope: "sk-other"}, SecretOutput("sealed", pub))
    report = write_tree(changed.files, tmp_path / "out")
    assert report.written == ["anthropic.yaml"]
    old, new = one["anthropic.yaml"].splitlines(), changed.files["anthropic.yaml"].splitlines()
    assert sum(a != b for a, b in zip(old, new, strict=True)) == 1


def test_prune_removes_only_manifests(tmp_path: Path) -> None:
    data = examples()
    out = tmp_path / "out"
    files = render_manifests(data, secrets_of(data), SecretOutput("env")).files
    write_tree(files, out)
    (out / "README.md").write_text("kind: Provider\n")
    (out / "notes.yaml").write_text("kind: Other\n")
    (out / "sub").mkdir()
    (out / "sub" / "x.yaml").write_text("kind: Provider\n")
    (out / "hand.yaml").write_text("apiVersion: gwconfig/v1\nkind: Provider\nprovider_id: h\n")
    data["providers"] = [p for p in data["providers"] if p["provider_id"] != "mock"]
    report = write_tree(render_manifests(data, {}, SecretOutput("env")).files, out)
    assert report.removed == ["hand.yaml", "mock.yaml"]
    assert {p.name for p in out.iterdir()} >= {"README.md", "notes.yaml", "sub"}
    kept = write_tree({}, out, prune=False)
    assert kept.removed == []


def test_fresh_directory_is_all_or_nothing(tmp_path: Path) -> None:
    out = tmp_path / "a" / "out"
    with pytest.raises(Exception):  # noqa: B017 - any failure: a path that cannot be written
        write_tree({"ok.yaml": b"x", "ok.yaml/inner": b"y"}, out)
    assert not out.exists()
    assert list((tmp_path / "a").iterdir()) == []


def test_secret_output_rule(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="--seal-to"):
        secret_output(None, False, tmp_path)
    assert secret_output(None, True, tmp_path) == SecretOutput("env")
    _, pub = generate_keypair()
    (tmp_path / "sealing.pub").write_text(write_public_key_text(pub))
    assert secret_output(None, False, tmp_path).public_key == pub.__class__(
        pub.raw, str(tmp_path / "sealing.pub")
    )
    (tmp_path / "bad.pub").write_text("nope\n")
    with pytest.raises(SealingError, match="not a gwconfig sealing public key"):
        secret_output(str(tmp_path / "bad.pub"), False, tmp_path)
    with pytest.raises(SealingError, match="cannot read public key"):
        secret_output(str(tmp_path / "missing.pub"), False, tmp_path)
    with pytest.raises(ConfigurationError, match="exclude"):
        secret_output(str(tmp_path / "sealing.pub"), True, tmp_path)


def test_file_and_env_names_are_safe_and_unique() -> None:
    names = file_names(["gateway", "openai", "con", "a.b"])
    assert names["openai"] == "openai.yaml" and names["a.b"] == "a.b.yaml"
    assert names["gateway"] == "gateway-provider.yaml"
    assert names["con"].startswith("con-")
    assert len(set(names.values())) == 4
    assert env_name(SecretScope("azure-openai.eu", "key", "default", "prod")) == (
        "GW_AZURE_OPENAI_EU_KEY_DEFAULT_PROD"
    )


# -- scalars: rendered then loaded by the project's loader gives back exactly the value ---------

TRICKY = [
    "2023-06-01", "yes", "no", "on", "null", "~", "", " x", "x ", "123", "0755", "1e3", "0x1F",
    "1_000", ".inf", "-", "- x", "?", ": x", "a: b", "a #b", "#x", "@cf/meta/llama", "`x",
    "!tag", "&a", "*a", "|", ">", "%x", "'q'", '"q"', "[a]", "{a: b}", "a,b", "ft:gpt-4o:org:id",
    "x:", "tab\tin", "line\nbreak", "nel\x85x", "\u2028", "bom\ufeff", "ctl\x01", "del\x7f",
    "émoji 🎉", "<<", "=", "true", "True", "1.0", "-1", "+1", "a/b.c@d:e",
    "a\nb", "a\n", "a\n\n", "a\n\nb", "a\n  b", "\nx", " x\ny", "x\n \ny", "x\n\n\n",
    "x\ny\n", "- a\n- b", "a: b\n# c", "x\n\ty", "x \ny ",
]  # fmt: skip


def load_value(text: str) -> Any:
    docs, diags = load_yaml(text, "<test>")
    assert diags == [], (text, diags)
    return docs[0].data["v"]


@pytest.mark.parametrize("value", TRICKY)
def test_tricky_strings_read_back(value: str) -> None:
    out: list[str] = []
    yamlout.emit_value(out, "", "v", value)
    assert load_value("\n".join(out) + "\n") == value
    out = []
    yamlout.emit_value(out, "", "v", [value, "x"])
    assert load_value("\n".join(out) + "\n") == [value, "x"]
    out = []
    yamlout.emit_value(out, "", "v", [{"k": value, "z": 1}, {"k": [value]}])
    assert load_value("\n".join(out) + "\n") == [{"k": value, "z": 1}, {"k": [value]}]
    text = "v: " + yamlout.flow_map({value or "k": value}) + "\n"
    assert load_value(text) == {value or "k": value}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=8), inner,
                      max_size=4),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_value_reads_back(value: Any) -> None:
    out: list[str] = []
    yamlout.emit_value(out, "", "v", value)
    assert load_value("\n".join(out) + "\n") == value


def test_catalogue_round_trip(corpus: ModuleType, tmp_path: Path) -> None:
    data = dict(corpus.compiled_config(1).data)
    _, pub = generate_keypair()
    back, _ = write_and_compile(
        data, tmp_path / "out", SecretOutput("sealed", pub), write_public_key_text(pub)
    )
    assert without_secret_values(back) == without_secret_values(data)
    assert sum(len(p["models"]) for p in back["providers"]) > 4000


def test_stable_sealing_is_deterministic_and_opens() -> None:
    from gwconfig.secrets.sealing import seal

    priv, pub = generate_keypair()
    _, other = generate_keypair()
    scope = ("openai", "default", "prod")
    value = "sk-" + random_secrets.token_hex(16)
    blob = seal(value, scope, pub, stable=True)
    assert seal(value, scope, pub, stable=True) == blob
    assert open_blob(blob, {pub.key_id: priv}) == (scope, value)
    # any change of value, scope or recipient gives another blob; plain seal stays randomized
    assert seal(value + "x", scope, pub, stable=True) != blob
    assert seal(value, ("openai", "default", "dev"), pub, stable=True) != blob
    assert seal(value, scope, other, stable=True) != blob
    assert seal(value, scope, pub) != seal(value, scope, pub)
    assert value not in blob


def test_env_names_never_collide() -> None:
    data = examples()
    first = copy.deepcopy(next(p for p in data["providers"] if p["provider_id"] == "anthropic"))
    second = copy.deepcopy(first)
    first["provider_id"], second["provider_id"] = "a-b", "a_b"
    data["providers"] = [first, second]
    data["gateway"] = {"default_route": None, "routes": []}
    rendered = render_manifests(data, {}, SecretOutput("env"))
    names = [n for n, _ in rendered.env_names]
    assert names[0] == "GW_A_B_KEY_DEFAULT" and names[1].startswith("GW_A_B_KEY_DEFAULT_")
    assert rendered == render_manifests(data, {}, SecretOutput("env"))  # stable names


def test_oversized_public_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big.pub").write_bytes(b"#" * (1 << 20))
    with pytest.raises(SealingError, match="larger than"):
        secret_output(str(tmp_path / "big.pub"), False, tmp_path)


model_ids = st.from_regex(
    r"\A[^\s\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff][^\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]{0,20}[^\s\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]\Z"
)
free_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(model_ids, min_size=1, max_size=4, unique=True),
    free_text,
    st.dictionaries(free_text, json_values, max_size=3),
    st.lists(st.from_regex(r"\A[a-z0-9][a-z0-9_]{0,8}\Z"), max_size=3),
)
def test_any_provider_compiles_back_the_same(
    ids: list[str], text: str, parameters: dict[str, Any], caps: list[str]
) -> None:
    from gwconfig.manifests.compile import canonical_provider
    from gwconfig.manifests.model import ProviderManifest

    doc = {
        "apiVersion": "gwconfig/v1", "kind": "Provider", "provider_id": "p",
        "provider_type": "openai",
        "description": text, "connection": {"headers": {"X-A": text} if text else {}},
        "models": [
            {"model_id": m, "display_name": text or None, "parameters": parameters,
             "capabilities": caps, "aliases": [m + "-alias"]}
            for m in ids
        ],
    }  # fmt: skip
    data = canonical_provider(ProviderManifest.model_validate(doc))
    rendered = render_manifests(
        {"providers": [data], "gateway": {}}, {}, SecretOutput("env")
    ).files["p.yaml"]
    docs, diags = load_yaml(rendered.decode(), "p.yaml")
    assert diags == []
    assert canonical_provider(ProviderManifest.model_validate(docs[0].data)) == data


def test_settings_defaults_are_the_models() -> None:
    from gwconfig.adopt.writer import SETTINGS_DEFAULTS
    from gwconfig.manifests.model import RequestSettings

    defaults = RequestSettings().model_dump()
    defaults["retry_on_status"] = list(defaults["retry_on_status"])
    assert defaults == SETTINGS_DEFAULTS
    assert list(SETTINGS_DEFAULTS) == list(RequestSettings.model_fields)  # the model's order


def test_other_definitions_of_a_written_provider_are_reported(tmp_path: Path) -> None:
    from gwconfig.adopt.tree import other_definitions

    out = tmp_path / "out"
    shutil.copytree(REPO / "providers.d", out)
    data = examples()
    files = render_manifests(data, {}, SecretOutput("env")).files
    write_tree(files, out)
    ids = {p["provider_id"] for p in data["providers"]}
    assert other_definitions(out, files, ids) == [
        f"{out}/self-hosted/vllm.yaml.j2: also defines provider vllm"
    ]
    assert (out / "self-hosted" / "vllm.yaml.j2").exists()  # never removed
    assert not (out / "azure-openai.yaml").exists()  # the same provider, now azure-openai-eu.yaml
