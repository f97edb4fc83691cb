"""Back-office databases for tests and benchmarks: ``backoffice_schema.sql``, filled.

``create_backoffice(url)`` runs the schema file's DDL (translated per engine: DATETIME for
TIMESTAMP on MySQL/MariaDB, so NULLs stay NULL); ``catalogue_rows(scale)`` turns the real model
catalogue (see ``corpus.py``) into back-office rows stored the way a back-office stores them
(JSON as text, booleans as integers); ``edge_rows(...)`` adds a provider exercising every column
(NULLs, unknown keys, encrypted, unnamed and expired keys); ``fill(url, rows)`` inserts them.

    python bench/backoffice_corpus.py --scale 5 --url sqlite:///bench/.corpus/bo.db
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus

SCHEMA = corpus.REPO.parent / "shared" / "seed" / "backoffice_schema.sql"
TABLE_ORDER = ("providers", "provider_models", "api_keys", "connection_parameters")
Rows = dict[str, list[dict[str, Any]]]


def schema_statements(dialect: str) -> list[str]:
    """The schema file's CREATE TABLE statements for ``dialect`` (comments removed)."""
    text = re.sub(r"--[^\n]*", "", SCHEMA.read_text(encoding="utf-8"))
    if dialect in ("mysql", "mariadb"):
        text = re.sub(r"\bTIMESTAMP\b", "DATETIME", text)
    return [s.strip() for s in text.split(";") if s.strip()]


def create_backoffice(url: str) -> None:
    """Create the back-office tables in the (empty) database at ``url``."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as conn:
        for statement in schema_statements(conn.dialect.name):
            conn.exec_driver_sql(statement)
    engine.dispose()


def fill(url: str, rows: Rows) -> None:
    """Insert ``rows`` (table -> list of column dicts) into the back-office at ``url``."""
    from sqlalchemy import MetaData, create_engine, insert

    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine, only=list(TABLE_ORDER))
    with engine.begin() as conn:
        for table in TABLE_ORDER:
            if rows.get(table):
                conn.execute(insert(meta.tables[table]), rows[table])
    engine.dispose()


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def catalogue_rows(scale: int = 1, *, start: int = 1) -> tuple[Rows, dict[str, str]]:
    """Rows for the catalogue x ``scale``, and each provider's generated key (provider -> key)."""
    rows: Rows = {t: [] for t in TABLE_ORDER}
    keys: dict[str, str] = {}
    created = datetime(2024, 1, 1, 12, 0, 0)
    model_row = start
    for i, doc in enumerate(corpus.provider_documents(scale), start=start):
        pid = doc["provider_id"]
        rows["providers"].append(
            {
                "id": i,
                "provider_id": pid,
                "provider_type": doc["provider_type"],
                "display_name": doc["display_name"],
                "description": doc["description"],
                "enabled": 1,
                "connection_params": _json(doc["connection"]),
                "request_settings": _json({"timeout": 120, "max_retries": 3}),
                "created_at": created,
                "updated_at": None,
            }
        )
        for m in doc["models"]:
            rows["provider_models"].append(
                {
                    "id": model_row,
                    "provider_id": pid,
                    "model_id": m["model_id"],
                    "display_name": None,
                    "model_type": m["model_type"],
                    "context_window": m.get("context_window"),
                    "max_tokens": m.get("max_tokens"),
                    "enabled": 1,
                    "capabilities": _json(m.get("capabilities")),
                    "parameters": _json(m.get("parameters")),
                }
            )
            model_row += 1
        keys[pid] = "sk-" + secrets.token_hex(20)
        rows["api_keys"].append(
            {
                "id": i,
                "provider_id": pid,
                "key_value": keys[pid],
                "is_encrypted": 0,
                "environment": "production",
                "expires_at": None,
                "created_at": created,
            }
        )
    return rows, keys


def edge_rows(legacy_key: str, keys: dict[str, str], *, start: int = 900_000) -> Rows:
    """A provider ``edge-bo`` exercising every column of the schema; its keys go into ``keys``
    (``edge-bo/default``, ``edge-bo/key-2``, ``edge-bo/expired``, ``edge-bo/param``)."""
    from cryptography.fernet import Fernet

    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    keys["edge-bo/default"] = "sk-edge-" + secrets.token_hex(12)
    keys["edge-bo/key-2"] = "sk-edge-" + secrets.token_hex(12)
    keys["edge-bo/expired"] = "sk-edge-" + secrets.token_hex(12)
    keys["edge-bo/param"] = "org-secret-" + secrets.token_hex(12)
    encrypted = Fernet(legacy_key.encode()).encrypt(keys["edge-bo/key-2"].encode()).decode()
    conn = {
        "api_base": "https://edge.example/v1",
        "api_version": "2024-10-21",
        "headers": {"X-Team": "ml"},
        "organization": "org-1",
        "timeout": 30,
        "extra": {"region": "eu"},
    }
    models = [
        ("meta-llama/Llama-3.1-8B:free", "chat", 8192, 2048, 1, '["vision", "streaming"]', None),
        ("org.model@v1.2", None, None, None, 0, None, '{"deployment": "dep-1"}'),
        ("typed/odd", "vision-chat", 0, 100, 1, '{"function_calling": true, "x": false}', "{}"),
    ]
    return {
        "providers": [
            {
                "id": start, "provider_id": "edge-bo", "provider_type": "openai",
                "display_name": None, "description": None, "enabled": 0,
                "connection_params": json.dumps(conn),
                "request_settings": '{"max_retries": 5, "timeout": 30, "rate_limit_rpm": 500, '
                '"circuit_breaker": true}',
                "created_at": None, "updated_at": None,
            }
        ],
        "provider_models": [
            {
                "id": start + i, "provider_id": "edge-bo", "model_id": mid, "display_name": None,
                "model_type": kind, "context_window": ctx, "max_tokens": mx, "enabled": on,
                "capabilities": caps, "parameters": params,
            }
            for i, (mid, kind, ctx, mx, on, caps, params) in enumerate(models[:3])
        ],
        "api_keys": [
            {
                "id": start + 2, "provider_id": "edge-bo", "key_value": encrypted,
                "is_encrypted": 1, "environment": "production", "expires_at": None,
                "created_at": now - timedelta(days=1),
            },
            {
                "id": start + 1, "provider_id": "edge-bo", "key_value": keys["edge-bo/default"],
                "is_encrypted": 0, "environment": "production",
                "expires_at": now + timedelta(days=365), "created_at": now - timedelta(days=30),
            },
            {
                "id": start + 3, "provider_id": "edge-bo", "key_value": keys["edge-bo/expired"],
                "is_encrypted": 0, "environment": "staging",
                "expires_at": now - timedelta(days=3), "created_at": None,
            },
        ],
        "connection_parameters": [
            {
                "id": start + i, "provider_id": "edge-bo", "param_name": name,
                "param_value": value, "is_sensitive": sensitive, "environment": env,
            }
            for i, (name, value, sensitive, env) in enumerate(
                [
                    ("org_secret", keys["edge-bo/param"], 1, "production"),
                    ("temperature", "1.0", 0, "production"),
                    ("beta", "true", 0, "development"),
                    ("blob", '{"a": 1}', 0, "development"),
                    ("region", "eu-west", 0, "development"),
                ]
            )
        ],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """CLI: create and fill a back-office database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--url", required=True)
    args = parser.parse_args(argv)
    create_backoffice(args.url)
    rows, _ = catalogue_rows(args.scale)
    fill(args.url, rows)
    print(f"{len(rows['providers'])} providers, {len(rows['provider_models'])} models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
