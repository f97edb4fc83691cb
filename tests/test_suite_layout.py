"""The test suite's shape: no test module imports another, and no module of tests/ is long.

What several test modules share lives in helper modules (``builders.py``, ``reconcile_helpers.py``,
``gateways.py``, ...), and the fixtures among it are registered in conftest.py; a test module
that imports another would collect the other's tests' dependencies, fixtures and side effects
with it. Imports are read from the AST, so one inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
#: The same bound as for the package's modules (tests/test_layout.py).
MAX_LINES = 450


def is_test_module(name: str) -> bool:
    """Whether ``name`` (dotted) is a module pytest collects tests from."""
    return name.split(".")[0].startswith("test_")


def imported_test_modules(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import of a test module in ``source``, anywhere in it."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if is_test_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and is_test_module(node.module):
            found.append((node.lineno, node.module))
    return found


def test_no_test_module_imports_another() -> None:
    found = [
        f"{path.name}:{line}: imports {module}"
        for path in sorted(TESTS.glob("*.py"))
        for line, module in imported_test_modules(path.read_text(encoding="utf-8"))
    ]
    assert not found, (
        "test modules importing test modules (move what they share to a helper):\n"
        + ("\n".join(found))
    )


def test_no_module_of_the_suite_exceeds_the_line_limit() -> None:
    long = {
        path.name: lines
        for path in sorted(TESTS.glob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules of tests/ over {MAX_LINES} lines:\n" + "\n".join(
        f"{name}: {lines}" for name, lines in long.items()
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("from test_a import x\n", [(1, "test_a")], id="from-import"),
        pytest.param("import os\nimport test_b as b\n", [(2, "test_b")], id="import-as"),
        pytest.param("def f():\n    from test_c import y\n", [(2, "test_c")], id="in-a-function"),
        pytest.param("from builders import x\nimport conftest\n", [], id="helpers-are-fine"),
        pytest.param("from gwconfig.test_x import y\n", [], id="not-a-tests-module"),
    ],
)
def test_the_finder_sees_every_import_of_a_test_module(
    source: str, expected: list[tuple[int, str]]
) -> None:
    assert imported_test_modules(source) == expected
