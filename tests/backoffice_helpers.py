"""Back-offices for the ``gwconfig import`` tests: the corpus builder of bench/ as a fixture
(``bo_corpus``), a SQLite back-office filled from the catalogue (``backoffice``, both registered
in conftest.py), and the steps the tests repeat (fill, edit, an import that must fail).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from gwconfig.cli import cli


@pytest.fixture(scope="module")
def bo_corpus(corpus: ModuleType) -> ModuleType:
    """The back-office corpus builder (bench/backoffice_corpus.py)."""
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location(
        "backoffice_corpus", REPO / "bench" / "backoffice_corpus.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_backoffice(bo: ModuleType, url: str, legacy_key: str) -> dict[str, str]:
    """The catalogue and the edge rows in a new back-office; returns the generated keys."""
    bo.create_backoffice(url)
    rows, keys = bo.catalogue_rows(1)
    edge = bo.edge_rows(legacy_key, keys)
    for table in rows:
        rows[table] += edge[table]
    bo.fill(url, rows)
    return keys


def execute(url: str, sql: str, **params: Any) -> None:
    """One write to a database (to edit the back-office, as its users would)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(sql), params)
    engine.dispose()


@pytest.fixture
def backoffice(bo_corpus: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A SQLite back-office with the catalogue and edge rows; GWCONFIG_LEGACY_KEY set."""
    for var in list(os.environ):
        if var.startswith("GWCONFIG_") and not var.startswith("GWCONFIG_TEST_"):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'bo.db'}"
    legacy = Fernet.generate_key().decode()
    keys = build_backoffice(bo_corpus, url, legacy)
    monkeypatch.setenv("GWCONFIG_LEGACY_KEY", legacy)
    return url, keys, legacy


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def import_fails(url: str, *extra: str) -> str:
    """Run import expecting exit 1 and no output directory; return the error output."""
    res = run("import", "--from-url", url, "--secrets", "env", "--out", "out.d", *extra)
    assert res.exit_code == 1, res.output
    assert not Path("out.d").exists()
    assert "Traceback" not in res.output
    return str(res.output)
