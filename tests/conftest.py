"""Shared fixtures: one fresh database per test on SQLite, PostgreSQL and MariaDB.

PostgreSQL and MariaDB come from ``GWCONFIG_TEST_POSTGRES_URL`` / ``GWCONFIG_TEST_MYSQL_URL``
(``.ci/run`` sets both); when unset those parameters are skipped with a reason.

Every test that runs on a server carries the marker of its engine (declared in pyproject.toml):
the engine parameters of :data:`ENGINE_PARAMS` carry ``postgres``/``mysql``, and a test that uses
``pg_url`` or ``mysql_url`` (directly or through another fixture) is marked by
:func:`pytest_collection_modifyitems`. ``-m "not postgres and not mysql"`` runs SQLite only;
``-m "not slow"`` leaves out the tests that start many processes (tests/test_markers.py pins it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from runtime_servers import FakeLLMServer

#: The helper modules of tests/: their asserts are rewritten like the tests' own.
HELPERS = (
    "backoffice_helpers",
    "builders",
    "docs_words",
    "gated_upstream",
    "gateways",
    "messages_helpers",
    "messages_helpers",
    "manifest_texts",
    "reconcile_helpers",
    "redis_server",
    "runtime_servers",
    "serve_helpers",
    "threaded_server",
    "yaml_reference",
)
pytest.register_assert_rewrite(*HELPERS)
#: The helper modules that define fixtures shared by several test modules.
pytest_plugins = [
    "backoffice_helpers",
    "consumer_helpers",
    "gateways",
    "messages_helpers",
    "reconcile_helpers",
    "redis_server",
]

ENGINES = ("sqlite", "postgres", "mysql")
_ENV = {"postgres": "GWCONFIG_TEST_POSTGRES_URL", "mysql": "GWCONFIG_TEST_MYSQL_URL"}
#: The engines as parameters, each server one marked with its engine's marker: use these (not
#: the bare names) wherever a test or fixture is parametrized over engines.
ENGINE_PARAMS = [
    pytest.param(kind, marks=[getattr(pytest.mark, kind)] if kind in _ENV else [], id=kind)
    for kind in ENGINES
]
#: Fixtures that give a server database, and the marker their tests carry.
_SERVER_FIXTURES = {"pg_url": "postgres", "mysql_url": "mysql"}
#: The repository root (the parent of tests/).
REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a server fixture (directly or through another fixture)."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        for fixture, marker in _SERVER_FIXTURES.items():
            if fixture in names:
                item.add_marker(getattr(pytest.mark, marker))


def server_url(kind: str) -> str:
    """The base URL of a test server, or skip the test with a reason."""
    url = os.environ.get(_ENV[kind])
    if not url:
        pytest.skip(f"{_ENV[kind]} is not set: no {kind} server for this run")
    return url


def make_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """Create an empty database of ``kind`` for one test, yield its URL, drop it afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'gateway.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(server_url(kind))
    name = f"gwtest_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=None)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if kind == "postgres":
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture(params=ENGINE_PARAMS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL on each engine (SQLite file, PostgreSQL, MariaDB)."""
    yield from make_database(request.param, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file URL."""
    return f"sqlite:///{tmp_path / 'gateway.db'}"


@pytest.fixture
def memory_url() -> str:
    """An in-memory SQLite URL: one fresh database per engine (``open_database`` gives it one
    connection, shared by every thread). For tests that open the database once and use that
    :class:`~gwconfig.db.session.Database`; anything that opens the URL again (apply, plan,
    the CLI, the runtime loader given a URL) sees another, empty database, so those use
    ``sqlite_url``."""
    return "sqlite://"


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database URL (skipped when no server is configured)."""
    yield from make_database("postgres", tmp_path)


@pytest.fixture
def mysql_url(tmp_path: Path) -> Iterator[str]:
    """A fresh MariaDB database URL (skipped when no server is configured)."""
    yield from make_database("mysql", tmp_path)


@pytest.fixture
def fernet_key() -> str:
    """A Fernet key generated for this test run (nothing secret is committed)."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


@pytest.fixture
def isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test in an empty working directory with no gwconfig variables set."""
    for var in list(os.environ):
        if var.startswith("GWCONFIG_") and not var.startswith("GWCONFIG_TEST_"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_gwconfig(
    args: list[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``gwconfig *args`` in a real subprocess (this interpreter) in ``cwd`` with ``env``
    (by default this process's)."""
    return subprocess.run(
        [sys.executable, "-c", "from gwconfig.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def gwconfig_in_process(
    args: list[str], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``gwconfig *args`` through its entry point (:func:`gwconfig.cli.main`, which turns a bug
    into ``internal error``) in this process: in ``cwd``, with exactly ``env`` as the environment,
    stdout and stderr captured (warnings and log records of level WARNING and above written to
    stderr, as in a process). The same answer as :func:`run_gwconfig` without a new
    interpreter's start-up, for the tests about what a command says, not about the process."""
    import logging
    import warnings

    from click.testing import CliRunner

    from gwconfig.cli import main

    overrides: dict[str, str | None] = {k: None for k in os.environ if k not in env}
    overrides.update(env)
    here = os.getcwd()
    os.chdir(cwd)
    try:
        with CliRunner().isolation(env=overrides) as (out, err, _), warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = (
                lambda message, category, filename, lineno, file=None, line=None: sys.stderr.write(
                    warnings.formatwarning(message, category, filename, lineno, line)
                )
            )
            # what logging's last resort prints in a process (pytest's handlers hide it here)
            handler = logging.StreamHandler(sys.stderr)
            handler.setLevel(logging.WARNING)
            logging.getLogger().addHandler(handler)
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            finally:
                logging.getLogger().removeHandler(handler)
            sys.stdout.flush()
            sys.stderr.flush()
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(
        args,
        code,
        out.getvalue().decode("utf-8", "replace"),
        err.getvalue().decode("utf-8", "replace"),
    )


@pytest.fixture(scope="module")
def corpus() -> Iterator[ModuleType]:
    """The bench corpus builder, or a skip when the model catalogue is absent."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import corpus as module
    finally:
        sys.path.remove(str(REPO / "bench"))
    if not module.catalogue_path().is_file():
        pytest.skip(f"model catalogue not found at {module.catalogue_path()}")
    yield module


@pytest.fixture(scope="module")
def module_server() -> Iterator[FakeLLMServer]:
    """One loopback :class:`runtime_servers.FakeLLMServer` for a test module."""
    from runtime_servers import FakeLLMServer

    server = FakeLLMServer().start()
    yield server
    server.stop()
