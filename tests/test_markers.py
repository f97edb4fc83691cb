"""The ``postgres``/``mysql`` markers are on exactly the tests that use that server.

One collection run in a fresh process, with ``-m "not postgres and not mysql"``, records for
every test its markers, what it uses (the fixtures of its closure and the values of its
parameters) and whether the ``-m`` expression kept it: the markers must match the use, and the
expression must keep exactly the tests that use no server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
#: A collection of the whole suite in a subprocess: seconds, not milliseconds.
pytestmark = pytest.mark.slow

#: Marker -> the fixture that gives that server's database.
SERVERS = {"postgres": "pg_url", "mysql": "mysql_url"}
LOCAL_ONLY = "not postgres and not mysql"

PROBE = """
import json, os
import pytest

_all = []

@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    _all.extend(items)  # before -m deselects any

def pytest_collection_finish(session):
    kept = set(map(id, session.items))
    rows = []
    for item in _all:
        callspec = getattr(item, "callspec", None)
        rows.append({
            "id": item.nodeid,
            "kept": id(item) in kept,
            "markers": sorted({m.name for m in item.iter_markers()}),
            "fixtures": sorted(getattr(item, "fixturenames", ())),
            "params": sorted(repr(v) for v in (callspec.params.values() if callspec else ())),
        })
    with open(os.environ["MARKER_PROBE_OUT"], "w") as out:
        json.dump(rows, out)
"""

Row = dict[str, "list[str] | str | bool"]


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> list[Row]:
    """Every test of the suite as the probe saw it."""
    tmp = tmp_path_factory.mktemp("markers")
    (tmp / "marker_probe.py").write_text(PROBE)
    out = tmp / "collected.json"
    path = os.pathsep.join(filter(None, [str(tmp), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "MARKER_PROBE_OUT": str(out), "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "marker_probe",
         "-p", "no:cacheprovider", "-m", LOCAL_ONLY, str(TESTS)],
        capture_output=True, text=True, cwd=TESTS.parent, env=env, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows: list[Row] = json.loads(out.read_text())
    return rows


def _uses(row: Row, marker: str) -> bool:
    return SERVERS[marker] in row["fixtures"] or repr(marker) in row["params"]


@pytest.mark.parametrize("fixture", sorted(SERVERS.values()))
def test_a_server_marker_is_on_exactly_the_tests_that_use_the_server(
    collected: list[Row], fixture: str
) -> None:
    marker = next(m for m, f in SERVERS.items() if f == fixture)
    using = {str(r["id"]) for r in collected if _uses(r, marker)}
    marked = {str(r["id"]) for r in collected if marker in r["markers"]}
    assert using, f"no test uses {marker}: the probe does not see the engine parameters"
    assert sorted(using - marked) == [], f"tests on {marker} without the {marker} marker"
    assert sorted(marked - using) == [], f"tests marked {marker} that do not use it"


def test_not_postgres_and_not_mysql_deselects_exactly_the_server_tests(
    collected: list[Row],
) -> None:
    local = {str(r["id"]) for r in collected if not any(_uses(r, m) for m in SERVERS)}
    kept = {str(r["id"]) for r in collected if r["kept"]}
    assert sorted(kept - local) == [], "server tests that -m 'not postgres and not mysql' keeps"
    assert sorted(local - kept) == [], "SQLite-only tests that it leaves out"
    assert any("[sqlite" in i for i in kept), "the SQLite engine parameters must stay"
