"""The package's shape: no import cycles among the modules of ``src/gwconfig`` and no long modules.

The import graph is read from the AST, so an import inside a function counts as much as one at
the top of the file (a lazy import hides a cycle from Python, not from a reader); only imports
under ``if TYPE_CHECKING:`` are left out, since they never run. ``from pkg import name`` depends
on the submodule ``pkg.name`` when there is one and on ``pkg/__init__.py`` otherwise.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

import gwconfig

PACKAGE = Path(gwconfig.__file__).parent
#: The longest a module may be (~400 is the aim).
MAX_LINES = 450


def module_files(package: Path) -> dict[str, Path]:
    """Every module of ``package`` by dotted name (``pkg/__init__.py`` is ``pkg``)."""
    mods: dict[str, Path] = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(sub) for stmt in node.body for sub in ast.walk(stmt))
    return skipped


def imports_of(name: str, path: Path, mods: Mapping[str, Path]) -> set[str]:
    """The modules of ``mods`` that module ``name`` (at ``path``) imports anywhere but under
    ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skipped = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in mods else base)
    return {m for m in found if m in mods and m != name}


@functools.cache
def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (parsed once per run: the layer checks
    share it, and none of them changes it)."""
    mods = module_files(package)
    return {name: imports_of(name, path, mods) for name, path in mods.items()}


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (each is a set of modules
    that import one another in a circle), sorted; iterative Tarjan."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def test_no_import_cycles_in_the_package() -> None:
    found = cycles(import_graph(PACKAGE))
    assert not found, "import cycles in src/gwconfig:\n" + "\n".join(
        " <-> ".join(component) for component in found
    )


def test_no_module_exceeds_the_line_limit() -> None:
    long = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines:\n" + "\n".join(
        f"{path}: {lines}" for path, lines in long.items()
    )


#: (lower layer, upper layer): no module of the first imports a module of the second
#: (lower, upper): the lower package imports nothing of the upper one
LAYERS = [
    (lower, upper)
    for lower, uppers in {
        "gwconfig.db": ("reconcile", "runtime", "server", "adopt", "seed", "cli"),
        "gwconfig.secrets": ("reconcile", "runtime", "server", "adopt", "seed", "cli"),
        "gwconfig.manifests": ("reconcile", "runtime", "server", "adopt", "seed", "cli"),
        "gwconfig.runtime": ("server", "cli"),
    }.items()
    for upper in (f"gwconfig.{name}" for name in uppers)
]


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize(("lower", "upper"), LAYERS)
def test_a_lower_layer_does_not_import_an_upper_one(lower: str, upper: str) -> None:
    graph = import_graph(PACKAGE)
    found = sorted(
        f"{name} -> {dep}"
        for name, deps in graph.items()
        if _in(name, lower)
        for dep in deps
        if _in(dep, upper)
    )
    assert not found, f"{lower} imports {upper}:\n" + "\n".join(found)


def _write(root: Path, files: Mapping[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {"__init__.py": "", "a.py": "from pkg.b import x\n", "b.py": "from pkg import a\n"},
            [["pkg.a", "pkg.b"]],
            id="top-level",
        ),
        pytest.param(
            {
                "__init__.py": "",
                "a.py": "def f():\n    from pkg.b import x\n",
                "b.py": "import pkg.a\n",
            },
            [["pkg.a", "pkg.b"]],
            id="function-level",
        ),
        pytest.param(
            {
                "__init__.py": "",
                "a.py": "from . import b\n",
                "b.py": "from .sub.c import x\n",
                "sub/__init__.py": "",
                "sub/c.py": "from ..a import y\n",
            },
            [["pkg.a", "pkg.b", "pkg.sub.c"]],
            id="relative-three-modules",
        ),
        pytest.param(
            {
                "__init__.py": "",
                "a.py": (
                    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import x\n"
                ),
                "b.py": "from pkg.a import y\n",
            },
            [],
            id="type-checking-only",
        ),
        pytest.param(
            {
                "__init__.py": "def __getattr__(n):\n    from pkg import a\n",
                "a.py": "from pkg.b import x\n",
                "b.py": "from pkg import c\n",
                "c.py": "",
            },
            [],
            id="submodule-import-is-not-the-package",
        ),
    ],
)
def test_the_cycle_finder_sees_every_kind_of_import(
    tmp_path: Path, files: dict[str, str], expected: list[list[str]]
) -> None:
    assert cycles(import_graph(_write(tmp_path, files))) == expected
