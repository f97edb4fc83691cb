"""Revisions: ``gwconfig history`` and ``gwconfig show-revision`` (read only).

Each effective apply writes one ``config_revisions`` row (see :mod:`gwconfig.reconcile.apply`);
rolling back to one is :func:`gwconfig.reconcile.commands.rollback`. SQLAlchemy and the
modules built on it are imported inside the functions that query: ``gwconfig plan`` imports this
module (for the drift check) and never SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gwconfig.canonical import format_timestamp
from gwconfig.entities import SecretScope
from gwconfig.errors import NotFoundError

if TYPE_CHECKING:
    from sqlalchemy import Connection


@dataclass(frozen=True)
class RevisionInfo:
    """One row of ``gwconfig history``."""

    number: int
    created_at: str | None
    actor: str
    git_sha: str | None
    content_hash: str
    state_hash: str
    summary: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "number": self.number,
            "created_at": self.created_at,
            "actor": self.actor,
            "git_sha": self.git_sha,
            "content_hash": self.content_hash,
            "state_hash": self.state_hash,
            "summary": dict(self.summary),
        }


def history(database_url: str | None, limit: int = 20) -> list[RevisionInfo]:
    """The newest ``limit`` revisions, newest first."""
    from gwconfig.db.session import connected

    with connected(database_url, "reading history from") as conn:
        return history_rows(conn, limit)


def history_rows(conn: Connection, limit: int, before: int | None = None) -> list[RevisionInfo]:
    """The newest ``limit`` revisions numbered below ``before`` (all if None), newest first."""
    from sqlalchemy import select

    from gwconfig.db.models import ConfigRevision

    t = ConfigRevision.__table__
    stmt = select(
        t.c.number, t.c.created_at, t.c.actor, t.c.git_sha, t.c.content_hash, t.c.state_hash,
        t.c.summary,
    ).order_by(t.c.number.desc()).limit(limit)  # fmt: skip
    if before is not None:
        stmt = stmt.where(t.c.number < before)
    rows = conn.execute(stmt).all()
    return [
        RevisionInfo(r[0], format_timestamp(r[1]), r[2], r[3], r[4], r[5], r[6] or {}) for r in rows
    ]


def revision_row(conn: Connection, number: int) -> Any:
    """Every column of revision ``number`` (the snapshot decompressed); NotFoundError if none."""
    from sqlalchemy import select

    from gwconfig.db.models import ConfigRevision

    t = ConfigRevision.__table__
    row = conn.execute(select(t).where(t.c.number == number)).mappings().first()
    if row is None:
        raise NotFoundError(f"revision {number} does not exist", hint="see 'gwconfig history'")
    return row


def show_revision(database_url: str | None, number: int) -> dict[str, Any]:
    """One revision: metadata, its configuration (secret refs only) and its audit events."""
    from gwconfig.db.session import connected

    with connected(database_url, "reading a revision from") as conn:
        return revision_details(conn, number)


def revision_details(conn: Connection, number: int) -> dict[str, Any]:
    """What :func:`show_revision` shows, read on ``conn``; NotFoundError if there is none."""
    from sqlalchemy import select

    from gwconfig.db.models import AuditEvent

    row = revision_row(conn, number)
    a = AuditEvent.__table__
    events = conn.execute(
        select(a.c.entity_type, a.c.entity_key, a.c.action)
        .where(a.c.revision_number == number)
        .order_by(a.c.id)
    ).all()
    snapshot = row["snapshot"] or {}
    info = RevisionInfo(
        row["number"], format_timestamp(row["created_at"]), row["actor"], row["git_sha"],
        row["content_hash"], row["state_hash"], row["summary"] or {},
    ).to_json()  # fmt: skip
    info["config"] = snapshot.get("config")
    info["changes"] = [{"entity": e[0], "key": e[1], "action": e[2]} for e in events]
    return info


def _fp(body: Mapping[str, Any], fps: Mapping[str, str], scope: SecretScope) -> dict[str, Any]:
    return {**body, "value": {"fingerprint": fps.get(scope.id)}}


def snapshot_state(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical state a revision produced (secret values as stored fingerprints)."""
    fps = snapshot.get("fingerprints", {})
    config = snapshot["config"]
    providers = []
    for p in config["providers"]:
        pid = p["provider_id"]
        q = dict(p)
        q["api_keys"] = [_fp(k, fps, SecretScope.of("api_key", pid, k)) for k in p["api_keys"]]
        q["connection_parameters"] = [
            _fp(c, fps, SecretScope.of("connection_parameter", pid, c)) if c["sensitive"] else c
            for c in p["connection_parameters"]
        ]
        providers.append(q)
    return {**config, "providers": providers}
