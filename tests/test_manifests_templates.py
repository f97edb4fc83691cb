"""Hostile templates: every limit is a diagnostic at the template line, never a hang or a crash.

Everything runs in this process (with pytest-timeout and an address-space cap as a safety net
for the machine): a template that escaped its limits would hang the test or fail with
``out of memory`` instead of the limit message asserted here.
"""

from __future__ import annotations

import itertools
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gwconfig.manifests import validate_path
from gwconfig.manifests.templates.limits import DEFAULT_LIMITS, TemplateLimits
from gwconfig.manifests.templates.render import render

HEAD = "apiVersion: gwconfig/v1\nkind: Provider\nprovider_id: t\nprovider_type: mock\n"
LINE = HEAD.count("\n") + 1  # the line the hostile expression is written on

# name -> (template text, a fragment of the expected message)
HOSTILE: dict[str, tuple[str, str]] = {
    "power at compile time": ("{{ 10**(10**8) }}", "would have more than 4,096 bits"),
    "power of a variable": ("{% set n = 10**8 %}{{ 10 ** n }}", "more than 4,096 bits"),
    "power of two": ("{{ 2 ** 100000 }}", "more than 4,096 bits"),
    "negative base": ("{{ (-3) ** 100000 }}", "more than 4,096 bits"),
    "product of big integers": ("{{ 2 ** 4000 * 2 ** 4000 }}", "more than 4,096 bits"),
    "integer from a long string": ("{{ ('9' * 3000)|int }}", "more than 4,096 bits"),
    "number too long to print": ("{{ 10 ** 5000 }}", "more than 4,096 bits"),
    "float overflow": ("{{ 2.0 ** 100000 }}", "a number is too large"),
    "string repetition": ("{{ 'x' * 10**9 }}", "a repetition would have 1,000,000,000"),
    "repetition, number first": ("{{ 10**9 * 'x' }}", "a repetition would have 1,000,000,000"),
    "list repetition": ("{{ [1] * 10**9 }}", "a repetition would have"),
    "tuple repetition": ("{{ (1, 2) * 10**8 }}", "a repetition would have"),
    "nested repetition": ("{{ [[1] * 1000] * 1000 }}", "a repetition would have 1,002,000"),
    "shared nesting": (
        "{% set a = ['x' * 1000] * 900 %}{{ [a, a] }}",
        "a template value may have at most 1,000,000",
    ),
    "nested loops over a list": (
        "{% set l = [1] * 100000 %}{% for a in l %}{% for b in l %}{% endfor %}{% endfor %}",
        "more than 100,000 loop iterations",
    ),
    "loops in a macro": (
        "{% macro m() %}{% for a in range(1000) %}{{ caller() }}{% endfor %}{% endmacro %}"
        "{% call m() %}{% for b in range(1000) %}{% endfor %}{% endcall %}",
        "more than 100,000 loop iterations",
    ),
    "recursive loop": (
        "{% set l = [1] %}{% for x in l recursive %}{{ loop(l) }}{% endfor %}",
        "recursion too deep",
    ),
    "recursive macro": ("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(1) }}", "recursion too"),
    "huge range": ("{{ range(10**9) }}", "range() of 1,000,000,000 items"),
    "huge range joined": ("{{ range(10**7)|join(',') }}", "range() of 10,000,000 items"),
    "join with a long separator": ("{{ range(100000)|join(',' * 100) }}", "a join would have"),
    "str.join": ("{{ ('x' * 1000).join(['y'] * 10000) }}", "a join would have"),
    "%-format width": ("{{ '%0999999999d' % 1 }}", "a %-format field would have 999,999,999"),
    "%-format star width": ("{{ '%*d' % (999999999, 1) }}", "a %-format field would have"),
    "%-format precision": ("{{ '%.999999999f' % 1.5 }}", "a %-format field would have"),
    "%-format width, many digits": ("{{ ('%0' ~ '9' * 5000 ~ 'd') % 1 }}", "a %-format field"),
    "format filter": ("{{ '%0999999999d'|format(1) }}", "a %-format field would have"),
    "format filter, keywords": ("{{ '%(a)999999999s'|format(a=1) }}", "a %-format field"),
    "str.format width": ("{{ '{:>999999999}'.format(1) }}", "a format field would have"),
    "str.format nested width": (
        "{{ '{:>{w}}'.format(1, w=999999999) }}",
        "a format field would have",
    ),
    "str.format many fields": ("{{ ('{0:>999999}' * 10).format(1) }}", "a formatted string"),
    "str.format_map": ("{{ '{a:>999999999}'.format_map({'a': 1}) }}", "a format field"),
    "ljust": ("{{ 'x'.ljust(10**9) }}", "ljust() would have 1,000,000,000"),
    "zfill": ("{{ '1'.zfill(10**9) }}", "zfill() would have"),
    "expandtabs": ("{{ ('\t' * 100000).expandtabs(1000) }}", "expandtabs() would have"),
    "center filter": ("{{ 'x'|center(10**9) }}", "center() would have"),
    "indent filter": ("{{ ('a\\n' * 100000)|indent(100) }}", "indent() would have"),
    "replace filter": ("{{ ('x' * 1000)|replace('x', 'y' * 10000) }}", "a replace would have"),
    "str.replace": ("{{ ('x' * 1000).replace('x', 'y' * 10000) }}", "a replace would have"),
    "translate": ("{{ ('x' * 1000).translate({120: 'y' * 10000}) }}", "translate() would"),
    "to_bytes": ("{{ (1).to_bytes(10**9, 'big') }}", "to_bytes() would have"),
    "batch": ("{{ [1]|batch(10**9, 'x')|list }}", "batch() would have"),
    "slice": ("{{ [1]|slice(10**9)|list }}", "slice() would have"),
    "wordwrap": ("{{ ('a ' * 1000)|wordwrap(1, wrapstring='x' * 10000) }}", "wordwrap() would"),
    "tojson indent": ("{{ ([[[1] * 50] * 50] * 50)|tojson(indent=100) }}", "tojson result"),
    "sum of lists": ("{{ ([[1] * 1000] * 900)|sum(start=[]) }}", "sum() of sequences"),
    "strings of many floats": (
        "{{ ([0.123456789] * 450000)|map('string')|list }}",
        "a sequence would have",
    ),
    "~ doubling": (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "a ~ concatenation would have 1,048,576",
    ),
    "+ doubling": (
        "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}"
        "{% set ns.l = ns.l + ns.l %}{% endfor %}",
        "a + concatenation would have",
    ),
    "deeply nested value": (
        "{% set ns = namespace(v=1) %}{% for i in range(100) %}{% set ns.v = [ns.v] %}{% endfor %}",
        "nested more than 64 levels deep",
    ),
    "output": (
        "{% for i in range(100000) %}{{ 'abcdefghij' * 100 }}{% endfor %}",
        "writes more than 8 MiB",
    ),
    "captured output": (
        "{% set x %}{% for i in range(100000) %}{{ 'abcdefghij' * 100 }}{% endfor %}{% endset %}",
        "writes more than 8 MiB",
    ),
    "literal text in a loop": (
        "{% for i in range(100000) %}" + "literal text " * 10 + "{% endfor %}",
        "writes more than 8 MiB",
    ),
}

# name -> (template text); the diagnostic names the line where the nesting goes too deep
NESTED: dict[str, str] = {
    "parentheses": "{{ " + "(" * 10000 + "1" + ")" * 10000 + " }}",
    "brackets": "{{ " + "[" * 10000 + "1" + "]" * 10000 + " }}",
    "braces": "{{ " + "{'a': " * 10000 + "1" + "}" * 10000 + " }}",
    "ifs": "{% if 1 %}" * 10000 + "{% endif %}" * 10000,
    "fors": "{% for a in [1] %}" * 30 + "{% endfor %}" * 30,
    "set blocks": "{% set x %}" * 30 + "{% endset %}" * 30,
    "long sum": "{{ 1" + " + 1" * 3000 + " }}",
    "long filter chain": "{{ 'x'" + "|upper" * 500 + " }}",
    "many nots": "{{ " + "not " * 3000 + "1 }}",
    "many minus signs": "{{ " + "- " * 3000 + "1 }}",
    "long conditional": "{{ " + "1 if 1 else " * 2000 + "1 }}",
}


@pytest.fixture
def small_process() -> Iterator[None]:
    """Cap this process's address space (1.5 GB above its size) while the test runs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as fh:
        size = int(fh.read().split()[0]) * resource.getpagesize()
    cap = size + 1536 * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _write(root: Path, body: str) -> None:
    (root / "providers.d").mkdir(exist_ok=True)
    (root / "providers.d" / "t.yaml.j2").write_text(HEAD + f"description: x{body}\n")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_templates_are_diagnostics_at_their_line(
    isolated_cwd: Path, small_process: None, name: str
) -> None:
    text, expected = HOSTILE[name]
    _write(isolated_cwd, text)
    (d,) = validate_path("providers.d")
    assert (d.path, d.line) == ("providers.d/t.yaml.j2", LINE)
    assert d.message.startswith("template error: ")
    assert expected in d.message


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(NESTED))
def test_deep_nesting_is_a_diagnostic_at_its_line(
    isolated_cwd: Path, small_process: None, name: str
) -> None:
    _write(isolated_cwd, NESTED[name])
    (d,) = validate_path("providers.d")
    assert (d.path, d.line) == ("providers.d/t.yaml.j2", LINE)
    assert d.message.startswith("template error: ")
    assert "nested" in d.message or "too long to compile" in d.message


@pytest.mark.timeout(60)
def test_the_cli_reports_a_hostile_template_without_an_internal_error(
    isolated_cwd: Path, small_process: None
) -> None:
    from gwconfig.cli import cli

    _write(isolated_cwd, "{{ " + "(" * 10000 + "1" + ")" * 10000 + " }}")
    result = CliRunner().invoke(cli, ["validate"])
    assert result.exit_code == 1
    assert f"providers.d/t.yaml.j2:{LINE}:1: error: template error: brackets nested" in (
        result.output
    )
    assert "internal error" not in result.output


def test_rendering_is_bounded_in_time() -> None:
    # an injected clock that moves one second per look: the budget runs out mid-loop
    ticks = itertools.count()
    source = "a: 1\n{% for i in range(100) %}{{ i }}{% endfor %}\n"
    rendered, (d,) = render(source, "t.yaml.j2", env=None, values={}, clock=lambda: next(ticks))
    assert rendered is None
    assert (d.line, d.message) == (
        2,
        "template error: rendering took longer than 10 seconds (the template limit); look for "
        "loops or filters over large values",
    )


def test_limits_are_the_documented_ones() -> None:
    documented = TemplateLimits(
        seconds=10.0,
        iterations=100_000,
        value_size=1_000_000,
        int_bits=4096,
        output=8 * 1024 * 1024,
        value_depth=64,
        block_nesting=16,
        bracket_nesting=32,
    )
    assert documented == DEFAULT_LIMITS
    readme = (Path(__file__).parents[1] / "docs" / "manifests.md").read_text()
    for figure in ("10 seconds", "100,000 loop iterations", "1,000,000", "4096-bit", "8 MiB"):
        assert figure in readme


@pytest.mark.parametrize(
    "name", ["lipsum", "dict", "cycler", "joiner", "self._TemplateReference__context"]
)
def test_the_context_is_env_vars_range_and_namespace(name: str) -> None:
    rendered, (d,) = render(f"{{{{ {name} }}}}", "t.yaml.j2", env=None, values={})
    assert rendered is None and d.message.startswith("template error: ")
    ok, diags = render(
        "{{ env }} {{ vars.a }} {{ range(3)|list }} {% set ns = namespace(n=1) %}{{ ns.n }}",
        "t.yaml.j2",
        env="dev",
        values={"a": 7},
    )
    assert diags == [] and ok is not None and ok.text == "dev 7 [0, 1, 2] 1"


@pytest.mark.parametrize("name", ["random", "urlize", "xmlattr", "pprint"])
def test_nondeterministic_and_html_filters_are_not_available(name: str) -> None:
    rendered, (d,) = render(f"{{{{ [1]|{name} }}}}", "t.yaml.j2", env=None, values={})
    assert rendered is None and d.message == f"template error: No filter named '{name}'."


def test_templates_cannot_mutate_values() -> None:
    rendered, (d,) = render("{% set l = [1] %}{{ l.append(2) }}", "t.yaml.j2", env=None, values={})
    assert rendered is None and "unsafe" in d.message


@pytest.mark.slow
def test_large_values_given_to_the_template_pass_through_unchanged() -> None:
    # the values file is not a template value: it may be larger, as long as it is not copied
    big = {"text": "v" * 2_000_000, "models": [{"id": f"m{i}"} for i in range(300_000)]}
    source = "{{ vars.text|length }} {{ (vars.models|default([]))|length }} {{ vars.text[:3] }}"
    ok, diags = render(source, "t.yaml.j2", env=None, values=big)
    assert diags == [] and ok is not None and ok.text == "2000000 300000 vvv"
    rendered, (d,) = render("{{ vars.text ~ 'x' }}", "t.yaml.j2", env=None, values=big)
    assert rendered is None and "a ~ concatenation would have 2,000,001" in d.message


def test_ordinary_templates_still_render() -> None:
    source = (
        "{%- for m in vars.models %}\n- id: {{ m.id | upper }}\n"
        "  tags: {{ (m.tags | default([]) + ['x']) | join(', ') }}\n"
        "  note: {{ '%-6s|' % m.id }}{{ '{:>4}'.format(loop.index) }}{{ ' ' ~ m.id * 2 }}\n"
        "{%- endfor %}\n{{ vars | tojson }}\n"
    )
    values = {"models": [{"id": f"m{i}", "tags": ["a"]} for i in range(3)]}
    ok, diags = render(source, "t.yaml.j2", env=None, values=values)
    assert diags == [] and ok is not None
    assert "- id: M2\n  tags: a, x\n  note: m2    |   3 m2m2" in ok.text
    assert ok.line_map[:2] == (1, 2)
