"""Did-you-mean hints for unknown model names stay helpful and bounded at 24,000 names."""

from __future__ import annotations

import random
import string
from pathlib import Path

from gwconfig.runtime import ConfigLoader, InterventionContext, LLMConfig, LLMRequest, NoRouteError
from gwconfig.runtime.suggest import MAX_QUERY, WINDOW, NameIndex
from runtime_servers import generate_each, provider_doc, write_compiled

FAMILIES = ("gpt", "claude", "gemini", "llama", "mistral", "qwen", "command", "titan")


def many_names(count: int = 24_000) -> list[str]:
    """``count`` model-like names from a seeded generator (families, sizes, dates, tags)."""
    rng = random.Random(7)
    names = set()
    while len(names) < count:
        tag = "".join(rng.choices(string.ascii_lowercase, k=4))
        names.add(f"{rng.choice(FAMILIES)}-{rng.randint(1, 400)}b-{tag}-{rng.randint(1, 99):02d}")
    return sorted(names)


def test_near_misses_are_found_among_a_bounded_few() -> None:
    names = [*many_names(), "gpt-4o-mini", "claude-3-5-sonnet-latest"]
    index = NameIndex(names)
    limit = 2 * 2 * 2 * WINDOW  # two probes (name, part after '/') x two orders x both sides
    for miss, meant in (
        ("gpt-4o-mni", "gpt-4o-mini"),  # a typo near the end
        ("gtp-4o-mini", "gpt-4o-mini"),  # near the start
        ("openai/gpt-4o-mini", "gpt-4o-mini"),  # a provider prefix the name does not have
        ("Claude-3-5-Sonnet-Latest", "claude-3-5-sonnet-latest"),  # case
        ("claude-3-5-sonet-latest", "claude-3-5-sonnet-latest"),  # in the middle
    ):
        assert index.close(miss)[:1] == [meant], miss
        assert len(index.candidates(miss)) <= limit
    assert index.close("zzzzzzzz") == []


def test_a_huge_garbage_name_is_not_compared_with_anything() -> None:
    index = NameIndex(many_names(2_000))
    garbage = "".join(random.Random(3).choices(string.printable, k=4_000))
    assert index.candidates(garbage) == [] and index.close(garbage) == []
    assert index.candidates("g" * (MAX_QUERY + 1)) == []
    assert NameIndex([]).close("anything") == []


def test_the_gateway_hint_and_why_not_messages(tmp_path: Path) -> None:
    models = [
        {"model_id": "gpt-4o-mini"},
        {"model_id": "retired", "enabled": False, "aliases": ["old-fast"]},
        *({"model_id": name} for name in many_names(3_000)),
    ]
    path = write_compiled(
        tmp_path / "compiled.json",
        [
            provider_doc("alpha", "mock", models),
            provider_doc("off", "mock", ["solo"], enabled=False),
        ],
        routes=[{"name": "main", "targets": [{"model": "alpha/gpt-4o-mini"}]}],
    )
    config = ConfigLoader(path).load_config_as_object()

    def error(model: str) -> NoRouteError:
        request = LLMRequest("hi", LLMConfig(model_identifier=model), InterventionContext("s"))
        (err,) = generate_each(config, request)
        assert isinstance(err, NoRouteError)
        return err

    assert error("gpt-4o-mni").hint == "did you mean 'gpt-4o-mini'?"
    assert "model is disabled" in str(error("old-fast"))  # an alias of a disabled model
    assert "provider is disabled" in str(error("solo"))
    garbage = error("x" * 4_000)
    assert "no route, alias or model named" in str(garbage) and garbage.hint == "routes: main"
