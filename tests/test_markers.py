"""The ``postgres``/``mysql`` markers are on exactly the tests that use that server.

A collection session of its own in this process (quick: the test modules are imported already),
with ``-m "not postgres and not mysql"``, records for every test its markers, what it uses (the
fixtures of its closure and the values of its parameters) and whether the ``-m`` expression kept
it: the markers must match the use, and the expression must keep exactly the tests that use no
server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).parent
#: A collection of the whole suite: seconds, not milliseconds.
pytestmark = pytest.mark.slow

#: Marker -> the fixture that gives that server's database.
SERVERS = {"postgres": "pg_url", "mysql": "mysql_url"}
LOCAL_ONLY = "not postgres and not mysql"

Row = dict[str, "list[str] | str | bool"]


class Probe:
    """A plugin recording every collected test before ``-m`` deselects any, and which it kept."""

    def __init__(self) -> None:
        self.all: list[pytest.Item] = []
        self.rows: list[Row] = []

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.all.extend(items)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        kept = set(map(id, session.items))
        for item in self.all:
            callspec = getattr(item, "callspec", None)
            params = callspec.params.values() if callspec else ()
            self.rows.append(
                {
                    "id": item.nodeid,
                    "kept": id(item) in kept,
                    "markers": sorted({m.name for m in item.iter_markers()}),
                    "fixtures": sorted(getattr(item, "fixturenames", ())),
                    "params": sorted(repr(v) for v in params),
                }
            )


@pytest.fixture(scope="module")
def collected() -> list[Row]:
    """Every test of the suite as the probe saw it."""
    probe = Probe()
    code = pytest.main(
        ["--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-o", "addopts=-ra --strict-markers", "-m", LOCAL_ONLY,
         "--rootdir", str(TESTS.parent), str(TESTS)],
        plugins=[probe],
    )  # fmt: skip
    assert code == pytest.ExitCode.OK, code
    return probe.rows


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
