"""Cross-document checks: duplicates, routes, fallbacks, limits, expiry, one Gateway."""

from __future__ import annotations

from pathlib import Path

from gwconfig.manifests import validate_path
from manifest_texts import gateway, messages, provider, write


def test_duplicate_provider_id_names_both_files(isolated_cwd: Path) -> None:
    write(isolated_cwd, "a.yaml", provider("openai", "gpt-4o"))
    write(isolated_cwd, "b.yaml", provider("openai", "gpt-4o-mini"))
    assert messages(validate_path("providers.d")) == [
        (
            "providers.d/b.yaml",
            3,
            "duplicate provider_id 'openai': also defined at providers.d/a.yaml:3",
        )
    ]


def test_duplicate_model_id(isolated_cwd: Path) -> None:
    write(isolated_cwd, "a.yaml", provider("openai", "gpt-4o", "gpt-4o"))
    assert messages(validate_path("providers.d")) == [
        ("providers.d/a.yaml", 7, "duplicate model_id 'gpt-4o' (first at providers.d/a.yaml:6)")
    ]


def test_duplicate_api_key(isolated_cwd: Path) -> None:
    keys = """\
api_keys:
  - name: main
    environment: prod
    value: {env: A}
  - name: main
    environment: prod
    value: {env: B}
  - name: main
    value: {env: C}
"""
    write(isolated_cwd, "a.yaml", provider("openai", "gpt-4o", extra=keys))
    assert messages(validate_path("providers.d")) == [
        (
            "providers.d/a.yaml",
            11,
            "duplicate API key 'main' for environment 'prod' (first at providers.d/a.yaml:8)",
        )
    ]


def test_expired_api_key(isolated_cwd: Path) -> None:
    keys = "api_keys:\n  - value: {env: A}\n    expires_at: 2020-01-31T00:00:00Z\n"
    write(isolated_cwd, "a.yaml", provider("openai", "gpt-4o", extra=keys))
    d = validate_path("providers.d")
    assert messages(d) == [
        (
            "providers.d/a.yaml",
            9,
            "API key 'default' (environment 'default') expired on 2020-01-31 00:00 UTC; "
            "the gateway never uses it",
        )
    ]
    assert [x.severity for x in d] == ["warning"]


def test_max_tokens_above_context_window(isolated_cwd: Path) -> None:
    text = (
        provider("openai") + "  - model_id: small\n    context_window: 100\n    max_tokens: 200\n"
    )
    write(isolated_cwd, "a.yaml", text)
    assert messages(validate_path("providers.d")) == [
        (
            "providers.d/a.yaml",
            8,
            "max_tokens (200) is larger than context_window (100) of model 'small'",
        )
    ]


def test_route_targets_must_exist_and_be_enabled(isolated_cwd: Path) -> None:
    write(
        isolated_cwd,
        "a.yaml",
        provider("openai", "gpt-4o", "gpt-4o-mini") + "  - model_id: old\n    enabled: false\n",
    )
    write(
        isolated_cwd,
        "b.yaml",
        provider("offline", "m") + "enabled: false\n",
    )
    routes = """\
- name: chat
  targets:
    - model: openai/gpt-4
    - model: opnai/gpt-4o
    - model: offline/m
    - model: openai/old
"""
    write(isolated_cwd, "gw.yaml", gateway(routes))
    diags = validate_path("providers.d")
    assert messages(diags) == [
        (
            "providers.d/gw.yaml",
            6,
            "route 'chat' targets unknown model 'gpt-4' of provider 'openai'",
        ),
        ("providers.d/gw.yaml", 7, "route 'chat' targets unknown provider 'opnai'"),
        ("providers.d/gw.yaml", 8, "route 'chat' targets offline/m, whose provider is disabled"),
        ("providers.d/gw.yaml", 9, "route 'chat' targets openai/old, whose model is disabled"),
    ]
    assert diags[0].hint == "did you mean 'gpt-4o'?"
    assert diags[1].hint == "did you mean 'openai'?"


def test_fallback_cycle_and_unknown_fallback(isolated_cwd: Path) -> None:
    write(isolated_cwd, "a.yaml", provider("openai", "gpt-4o"))
    routes = """\
- name: a
  targets: [{model: openai/gpt-4o}]
  fallbacks: [b]
- name: b
  targets: [{model: openai/gpt-4o}]
  fallbacks: [c, nope]
- name: c
  targets: [{model: openai/gpt-4o}]
  fallbacks: [a]
"""
    write(isolated_cwd, "gw.yaml", gateway(routes, default="missing"))
    assert messages(validate_path("providers.d")) == [
        ("providers.d/gw.yaml", 3, "default_route 'missing' is not a route"),
        ("providers.d/gw.yaml", 7, "fallback cycle: a -> b -> c -> a"),
        ("providers.d/gw.yaml", 10, "route 'b' falls back to unknown route 'nope'"),
    ]


def test_at_most_one_gateway(isolated_cwd: Path) -> None:
    write(isolated_cwd, "a.yaml", provider("openai", "gpt-4o"))
    write(isolated_cwd, "gw1.yaml", gateway("- name: a\n  targets: [{model: openai/gpt-4o}]\n"))
    write(isolated_cwd, "gw2.yaml", "apiVersion: gwconfig/v1\nkind: Gateway\n")
    assert messages(validate_path("providers.d")) == [
        (
            "providers.d/gw2.yaml",
            1,
            "a second Gateway document (the first is at providers.d/gw1.yaml:1)",
        )
    ]


def test_duplicate_alias_across_providers(isolated_cwd: Path) -> None:
    write(isolated_cwd, "a.yaml", provider("a", "m") + "    aliases: [fast]\n")
    write(isolated_cwd, "b.yaml", provider("b", "m") + "    aliases: [fast]\n")
    assert messages(validate_path("providers.d")) == [
        ("providers.d/b.yaml", 7, "alias 'fast' of b/m is already an alias of a/m")
    ]


def test_invalid_provider_does_not_cascade_into_routes(isolated_cwd: Path) -> None:
    write(isolated_cwd, "a.yaml", provider("openai", "gpt-4o") + "colour: blue\n")
    write(isolated_cwd, "gw.yaml", gateway("- name: a\n  targets: [{model: openai/gpt-4o}]\n"))
    assert messages(validate_path("providers.d")) == [
        ("providers.d/a.yaml", 7, "unknown field 'colour'")
    ]


def test_validate_checks_sealed_references_offline(isolated_cwd: Path) -> None:
    keys = "api_keys:\n  - name: main\n    value: {sealed: 'gwseal:v1:bm90LWEtYmxvYg'}\n"
    write(isolated_cwd, "a.yaml", provider("openai", "gpt-4o", extra=keys))
    diags = validate_path("providers.d")
    assert [(d.path, d.line) for d in diags] == [("providers.d/a.yaml", 9)]
