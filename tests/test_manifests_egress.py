"""The egress rules: ``api_base_refusal`` on its own, and ``validate``/``plan`` at file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gwconfig.errors import ManifestError
from gwconfig.manifests import validate_path
from gwconfig.manifests.egress import EgressPolicy, api_base_refusal, entry_problem
from gwconfig.reconcile import commands
from gwconfig.reconcile.plan import PlanOptions
from gwconfig.secrets.origin import origin_of, provider_origin
from manifest_texts import messages, provider, write

POLICY = EgressPolicy(("api.openai.com", "*.internal.example", "10.0.0.0/8", "fd00:1::/32"))


@pytest.mark.parametrize(
    "url",
    [
        "https://api.openai.com/v1",
        "https://API.OpenAI.com./v1",
        "http://vllm.internal.example:8000/v1",
        "http://10.20.30.40:8000",
        "http://[fd00:1::5]:8080/v1",
    ],
)
def test_allowed_by_the_policy(url: str) -> None:
    assert api_base_refusal(url, POLICY) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://api.openai.com.evil.example/v1", "not allowed by the Gateway's egress policy"),
        ("https://internal.example/v1", "not allowed"),  # a wildcard does not match its apex
        ("http://11.0.0.1/", "not allowed"),
        ("http://169.254.169.254/latest", "cloud metadata endpoint"),
        ("http://[::ffff:169.254.169.254]/", "cloud metadata endpoint"),
        ("http://0xa9.0xfe.0xa9.0xfe/", "cloud metadata endpoint"),
        ("http://2852039166/", "cloud metadata endpoint"),
        ("http://169.254.10.1/", "link-local address"),
        ("http://[fe80::1%25eth0]/", "link-local address"),
        ("http://[fd00:ec2::254]/", "cloud metadata endpoint"),
        ("http://metadata.google.internal./", "cloud metadata endpoint"),
        ("https://user:pw@api.openai.com/v1", "credentials"),
        ("https://user@api.openai.com/v1", "credentials"),
        ("ftp://api.openai.com/", "not an http(s) URL"),
        ("http:///v1", "has no host"),
        ("http://api.openai.com:99999/", "not an http(s) URL"),
    ],
)
def test_refused(url: str, why: str) -> None:
    refusal = api_base_refusal(url, POLICY)
    assert refusal is not None and why in refusal
    assert "pw" not in refusal


def test_metadata_and_link_local_are_refused_without_a_policy_unless_listed_explicitly() -> None:
    for url in ("http://169.254.169.254/", "http://169.254.3.4/", "http://metadata.goog/"):
        assert api_base_refusal(url, None) is not None
    assert api_base_refusal("http://127.0.0.1:8000/v1", None) is None
    assert api_base_refusal("http://localhost:8000/v1", None) is None
    broad = EgressPolicy(("0.0.0.0/0", "*.internal", "*.goog"))
    assert api_base_refusal("http://169.254.169.254/", broad) is not None
    assert api_base_refusal("http://metadata.google.internal/", broad) is not None
    explicit = EgressPolicy(("169.254.169.254", "169.254.8.0/24", "metadata.goog"))
    assert api_base_refusal("http://169.254.169.254/", explicit) is None
    assert api_base_refusal("http://169.254.8.9/", explicit) is None
    assert api_base_refusal("http://metadata.goog/", explicit) is None


@pytest.mark.parametrize(
    ("entry", "ok"),
    [
        ("api.openai.com", True), ("*.example.com", True), ("10.0.0.0/8", True),
        ("fe80::/10", True), ("127.0.0.1", True), ("::1", True),
        ("10.0.0.1/8", False), ("*", False), ("a..b", False), ("exa mple.com", False),
        ("*.*.example.com", False), (" api.openai.com", False), ("http://x", False),
    ],
)  # fmt: skip
def test_policy_entries(entry: str, ok: bool) -> None:
    assert (entry_problem(entry) is None) is ok


def test_origins() -> None:
    assert origin_of("https://API.example.com/v1") == "https://api.example.com:443"
    assert origin_of("http://h:8080") == "http://h:8080"
    assert origin_of("http://[::1]:80/") == "http://[::1]:80"
    assert provider_origin("openai", None) == "https://api.openai.com:443"
    assert provider_origin("anthropic", None) == "https://api.anthropic.com:443"
    assert provider_origin("azure_openai", None) == "default:azure_openai"


GATEWAY = """\
apiVersion: gwconfig/v1
kind: Gateway
egress:
  allow:
    - api.example.com
    - "*.corp.example"
"""


def test_validate_names_file_and_line(isolated_cwd: Path) -> None:
    write(isolated_cwd, "g.yaml", GATEWAY)
    extra = "connection:\n  api_base: https://api.example.org/v1\n"
    write(isolated_cwd, "a.yaml", provider("a", "m", extra=extra))
    extra = "connection:\n  api_base: http://llm.corp.example/v1\n"
    write(isolated_cwd, "b.yaml", provider("b", "m", extra=extra))
    assert messages(validate_path("providers.d")) == [
        (
            "providers.d/a.yaml",
            8,
            "connection.api_base refused: api.example.org is not allowed by the Gateway's "
            "egress policy (egress.allow)",
        )
    ]


def test_validate_refuses_metadata_without_a_policy_and_bad_entries(isolated_cwd: Path) -> None:
    extra = "connection:\n  api_base: http://169.254.169.254/latest\n"
    write(isolated_cwd, "a.yaml", provider("a", "m", extra=extra))
    write(isolated_cwd, "g.yaml", GATEWAY + "    - 10.0.0.1/8\n")
    found = messages(validate_path("providers.d"))
    assert found[0][:2] == ("providers.d/a.yaml", 8)
    assert "169.254.169.254 is a cloud metadata endpoint" in found[0][2]
    assert found[1][:2] == ("providers.d/g.yaml", 7)
    assert "10.0.0.1/8 has host bits set" in found[1][2]


def test_plan_refuses_an_api_base_outside_the_policy(isolated_cwd: Path) -> None:
    write(isolated_cwd, "g.yaml", GATEWAY)
    extra = "connection:\n  api_base: https://api.example.org/v1\n"
    write(isolated_cwd, "a.yaml", provider("a", "m", extra=extra))
    url = f"sqlite:///{isolated_cwd / 'gw.db'}"
    with pytest.raises(ManifestError) as caught:
        commands.plan("providers.d", url, PlanOptions())
    assert (caught.value.path, caught.value.line) == ("providers.d/a.yaml", 8)
    assert "egress policy" in str(caught.value)
