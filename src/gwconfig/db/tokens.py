"""The bearer tokens of ``gwconfig serve``: create, list, revoke and look up (``api_tokens``).

A token is ``gwc_`` followed by 43 URL-safe base64 characters (32 random bytes). It is returned
once, by :func:`create_token`; the table keeps its SHA-256 (hex) only. With 256 random bits a
plain hash is enough (no salt, no slow hash: nothing to guess), and a lookup is one indexed
SELECT on the hash, the match then confirmed with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select, update

from gwconfig.db import columns as col
from gwconfig.db.models import ApiToken, Consumer, utcnow
from gwconfig.db.session import Database, translate_errors
from gwconfig.errors import NotFoundError, ValidationFailed

#: every scope, weakest first; ``admin`` passes every check and ``write`` implies ``read``
SCOPES = ("read", "write", "runtime", "invoke", "admin")
TOKEN_PREFIX = "gwc_"
#: ``gwc_`` + 43 characters of URL-safe base64 (32 random bytes)
TOKEN_LENGTH = len(TOKEN_PREFIX) + 43
#: a token name: what audit rows record as the actor of the token's writes
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]*")
MAX_PATTERNS = 100
MAX_PATTERN_CHARS = 255
MAX_RPM = 1_000_000
#: the longest ``--expires-in`` (ten years)
MAX_LIFETIME = timedelta(days=3650)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def scope_allows(granted: str, needed: str) -> bool:
    """True when a token of scope ``granted`` may do what needs scope ``needed``."""
    return granted == needed or granted == "admin" or (granted == "write" and needed == "read")


def new_token() -> str:
    """A fresh random token text (``gwc_`` + 43 URL-safe characters)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The hex SHA-256 the table stores for ``token``."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _now() -> datetime:
    """The current time to the second (what every engine stores; MariaDB drops fractions)."""
    return utcnow().replace(microsecond=0)


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``3600s`` or ``2w`` as a timedelta (at most ten years)."""
    match = re.fullmatch(r"\s*(\d{1,9})\s*([smhdw])\s*", text)
    if match is None:
        raise ValidationFailed(
            f"invalid duration {text[:40]!r}", hint="use a number and a unit: 90m, 12h, 30d, 2w"
        )
    value = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if value <= timedelta(0) or value > MAX_LIFETIME:
        raise ValidationFailed(f"duration {text.strip()} is out of range (1s to 3650d)")
    return value


@dataclass(frozen=True)
class TokenRecord:
    """What the database knows about a token (never the token itself)."""

    name: str
    scope: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    models: tuple[str, ...] | None
    rpm: int | None
    #: the ``kind: Consumer`` whose models and limits the token inherits (None: its own)
    consumer: str | None = None

    def status(self, now: datetime | None = None) -> str:
        """``active``, ``revoked`` or ``expired`` at ``now`` (default: the current time)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or utcnow()):
            return "expired"
        return "active"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (``tokens list --format json``)."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "name": self.name,
            "scope": self.scope,
            "status": self.status(),
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "last_used_at": iso(self.last_used_at),
            "models": list(self.models) if self.models is not None else None,
            "rpm": self.rpm,
            "consumer": self.consumer,
        }


def _record(row: ApiToken) -> TokenRecord:
    models = orjson.loads(row.models) if row.models is not None else None
    return TokenRecord(
        name=row.name,
        scope=row.scope,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        models=tuple(models) if models is not None else None,
        rpm=row.rate_limit_rpm,
        consumer=row.consumer,
    )


def check_token_options(
    name: str, scope: str, models: tuple[str, ...] | None, rpm: int | None
) -> None:
    """Raise :class:`ValidationFailed` for a bad name, scope, pattern list or rate."""
    if len(name) > col.IDENT or NAME_PATTERN.fullmatch(name) is None:
        raise ValidationFailed(
            f"invalid token name {name[:80]!r}",
            hint=f"letters, digits and . _ @ - (at most {col.IDENT}), starting with a letter or "
            "digit",
        )
    if scope not in SCOPES:
        raise ValidationFailed(f"unknown scope {scope[:40]!r}", hint=f"one of {', '.join(SCOPES)}")
    if models is not None:
        if len(models) > MAX_PATTERNS:
            raise ValidationFailed(f"too many model patterns (at most {MAX_PATTERNS})")
        for pattern in models:
            if not pattern or len(pattern) > MAX_PATTERN_CHARS:
                raise ValidationFailed(f"model pattern must be 1 to {MAX_PATTERN_CHARS} characters")
    if rpm is not None and not 1 <= rpm <= MAX_RPM:
        raise ValidationFailed(f"--rpm must be between 1 and {MAX_RPM}")


def _check_consumer_options(consumer: str, models: tuple[str, ...] | None, rpm: int | None) -> None:
    """Raise :class:`ValidationFailed` for a malformed consumer name, or own models or rate."""
    if not consumer or len(consumer) > col.IDENT or NAME_PATTERN.fullmatch(consumer) is None:
        raise ValidationFailed(f"--consumer: invalid consumer name {consumer[:80]!r}")
    if models is not None or rpm is not None:
        raise ValidationFailed(
            "a token for a consumer inherits its models and limits: leave out --model and --rpm",
            hint="change the consumer's manifest instead",
        )


def create_token(
    db: Database,
    name: str,
    scope: str,
    *,
    expires_in: timedelta | None = None,
    models: tuple[str, ...] | None = None,
    rpm: int | None = None,
    consumer: str | None = None,
) -> tuple[str, TokenRecord]:
    """Store a new token named ``name``; return ``(token, record)``. The token is not stored.

    A token for a ``consumer`` (one ``apply`` wrote) inherits its models and limits: it takes
    neither ``models`` nor ``rpm`` of its own.
    """
    check_token_options(name, scope, models, rpm)
    if consumer is not None:
        _check_consumer_options(consumer, models, rpm)
    token = new_token()
    now = _now()
    row = ApiToken(
        name=name,
        scope=scope,
        token_hash=hash_token(token),
        created_at=now,
        expires_at=now + expires_in if expires_in is not None else None,
        models=orjson.dumps(list(models)).decode() if models is not None else None,
        rate_limit_rpm=rpm,
        consumer=consumer,
    )
    with translate_errors(db.url, "storing a token in"), db.transaction() as session:
        if consumer is not None and session.get(Consumer, consumer) is None:
            known = session.scalars(select(Consumer.name).order_by(Consumer.name).limit(5)).all()
            raise ValidationFailed(
                f"--consumer: no consumer named {consumer!r} in the gateway database",
                hint=f"known consumers: {', '.join(known)}"
                if known
                else "declare it in a 'kind: Consumer' manifest and run 'gwconfig apply'",
            )
        # a concurrent create of the same name loses on the unique index (a DatabaseError)
        if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
            raise ValidationFailed(
                f"a token named {name!r} already exists",
                hint="pick another name (names stay taken after revocation, for the audit log)",
            )
        session.add(row)
    return token, _record(row)


def list_tokens(db: Database) -> list[TokenRecord]:
    """Every token, by name (revoked and expired ones too)."""
    with translate_errors(db.url, "reading the tokens of"), db.session() as session:
        rows = session.scalars(select(ApiToken).order_by(ApiToken.name)).all()
        return [_record(r) for r in rows]


def revoke_token(db: Database, name: str) -> TokenRecord:
    """Mark ``name`` revoked (idempotent: an already revoked token keeps its first date)."""
    with translate_errors(db.url, "revoking a token in"), db.transaction() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.name == name))
        if row is None:
            raise NotFoundError(
                f"no token named {name[:80]!r}", hint="'gwconfig tokens list' shows them"
            )
        if row.revoked_at is None:
            row.revoked_at = _now()
        return _record(row)


def find_token(db: Database, token: str) -> TokenRecord | None:
    """The record of ``token`` (any status), or None when it is unknown or malformed."""
    if len(token) != TOKEN_LENGTH or not token.startswith(TOKEN_PREFIX):
        return None
    digest = hash_token(token)
    with translate_errors(db.url, "reading the tokens of"), db.session() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            return None
        return _record(row)


def touch_token(db: Database, name: str, when: datetime) -> None:
    """Record ``when`` (to the second) as the last use of ``name`` (callers throttle this)."""
    when = when.replace(microsecond=0)
    with translate_errors(db.url, "recording a token's use in"), db.transaction() as session:
        session.execute(update(ApiToken).where(ApiToken.name == name).values(last_used_at=when))
