"""Column limits of the gateway tables: the one place they are written.

:mod:`gwconfig.db.models` declares its columns with these numbers, and the manifest schema,
the secret resolver and the CLI options check values against them, so a value that validates
is a value every engine stores. No SQLAlchemy here: ``validate`` and ``plan`` import this
module without paying for the ORM. ``tests/test_db_columns.py`` reads the limits back from the
models' column types on each dialect and fails if the two ever disagree.

Each limit is that of the strictest engine:

* ``VARCHAR(n)`` holds ``n`` characters on PostgreSQL and on MySQL/MariaDB (utf8mb4); SQLite
  does not enforce it.
* ``TEXT`` holds 65,535 **bytes** (UTF-8) on MySQL/MariaDB; PostgreSQL and SQLite hold far more.
* ``INTEGER`` is 32-bit signed on PostgreSQL and MySQL/MariaDB (SQLite: 64-bit).
* PostgreSQL refuses the NUL character in any text, so no manifest string may contain one.
* ``JSON`` is ``LONGTEXT`` (4 GiB) on MariaDB and unbounded elsewhere: the manifest file size
  limit bounds those columns.
"""

from __future__ import annotations

#: provider ids, API key names and environments (identifier columns)
IDENT = 64
PROVIDER_TYPE = 64
DISPLAY_NAME = 255
MODEL_ID = 255
MODEL_TYPE = 32
PARAM_NAME = 128
ROUTE_NAME = 128
ROUTE_STRATEGY = 16
#: who applied (``--actor``, ``GWCONFIG_ACTOR``, ``GITHUB_ACTOR``): revisions and audit events
ACTOR = 255
#: the commit applied (``GITHUB_SHA`` or ``git rev-parse HEAD``): SHA-1 is 40, SHA-256 64
GIT_SHA = 64
HASH = 80
FINGERPRINT = 96
#: id of the Fernet key a secret is under (:func:`gwconfig.secrets.keys.key_id`)
KEY_ID = 16
#: the origin a secret is bound to (``scheme://host:port``, host at most 253 characters)
ORIGIN = 300
ENTITY_TYPE = 32
#: scope of an API token of ``gwconfig serve`` (``read``, ``write``, ``runtime``...)
TOKEN_SCOPE = 16
#: hex SHA-256 of an API token
TOKEN_HASH = 64
ENTITY_KEY = 512
ACTION = 16
SESSION_ID = 255
OUTCOME = 32

#: bytes (UTF-8) of a ``TEXT`` column on MySQL/MariaDB, the strictest engine
TEXT_BYTES = 65_535
#: the largest value of an ``INTEGER`` column on PostgreSQL and MySQL/MariaDB
INTEGER_MAX = 2**31 - 1

#: the longest secret (UTF-8 bytes) stored: its Fernet token (base64 of the padded ciphertext
#: plus 57 bytes) must fit a TEXT column, with room to spare for a key id in front of it
SECRET_BYTES = 32 * 1024


def text_bytes(value: str) -> int:
    """How many bytes ``value`` takes in a ``TEXT`` column (UTF-8)."""
    return len(value.encode("utf-8", "surrogatepass"))


def too_long_text(value: str, limit: int = TEXT_BYTES) -> str | None:
    """Why ``value`` does not fit a ``TEXT`` column, or None when it does."""
    size = text_bytes(value)
    if size <= limit:
        return None
    return f"too long: {size:,} bytes (UTF-8); the database holds at most {limit:,}"


def too_long_chars(value: str, limit: int) -> str | None:
    """Why ``value`` does not fit a ``VARCHAR(limit)`` column, or None when it does."""
    if len(value) <= limit:
        return None
    return f"too long: {len(value):,} characters; the database holds at most {limit:,}"
