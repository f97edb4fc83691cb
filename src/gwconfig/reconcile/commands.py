"""The reconciler's commands: ``plan``, ``apply``, ``apply_saved`` and ``rollback``.

One function per command, read top to bottom (as Alembic's ``command.py``), over one
:class:`Context` that owns what the command opens. The pure steps (compile, resolve, diff) are in
:mod:`gwconfig.reconcile.planning`; the one transaction that writes is
:func:`gwconfig.reconcile.apply.execute_plan`. Plaintext secrets exist only in memory between
resolution and encryption; plans carry fingerprints and references.

The database layer and the writer import SQLAlchemy, and the encryption keys import
``cryptography``: those modules are imported inside the functions that use them, so ``plan``
never imports SQLAlchemy and ``apply`` imports it while a forked child parses the manifests.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from gwconfig import settings
from gwconfig.db import columns as col
from gwconfig.entities import SecretScope
from gwconfig.errors import PlanError, StalePlanError
from gwconfig.perf.forking import Alongside
from gwconfig.perf.gcpause import gc_paused
from gwconfig.reconcile.plan import Plan, PlanOptions
from gwconfig.reconcile.planning import Desired, compile_manifests, compute_plan, resolve_desired
from gwconfig.reconcile.revisions import revision_row
from gwconfig.reconcile.state import ActualState, read_state, reading_database

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from gwconfig.db.session import Database
    from gwconfig.reconcile.apply import ApplyResult
    from gwconfig.secrets.keys import EncryptionKeys

Review = Callable[[Plan], bool]
SAVED_DIFFERS = (
    "plan is stale: planning again now gives other changes than the saved plan (was it made "
    "by another gwconfig version?); run plan again"
)
REVIEW_STALE = (
    "plan is stale: the database changed while the plan was being reviewed; nothing was "
    "applied; run apply again"
)


@dataclass(frozen=True)
class WriteOptions:
    """How a plan is written, shared by apply, apply of a saved plan and rollback.

    ``actor``: who writes (audit; default from the environment); ``lock_timeout``: seconds to
    wait for another apply; ``max_deletes``: refuse plans deleting more (None: no limit);
    ``interactive``: a person reviews the plan, so it is made without holding the lock.
    """

    actor: str | None = None
    lock_timeout: float = 60.0
    max_deletes: int | None = 20
    interactive: bool = False


DEFAULT_WRITE = WriteOptions()


class Context:
    """What one command holds open: the database, its encryption keys and the apply lock.

    One :class:`~contextlib.ExitStack` owns them all: they are opened in that order (each needs
    the one before) and closed in reverse when the ``with`` block ends, so the lock's
    transaction commits (or rolls back, on an error) and is released before the database is
    disposed of. ``plan`` opens a read-only :class:`~gwconfig.reconcile.state.Reader` instead
    (:meth:`read_only`), which needs no SQLAlchemy.
    """

    def __init__(self, database_url: str | None) -> None:
        self.database_url = database_url
        self._stack = ExitStack()
        self._db: Database | None = None
        self._keys: EncryptionKeys | None = None
        self._locked: tuple[Connection, ActualState] | None = None

    def __enter__(self) -> Self:
        self._stack.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        return self._stack.__exit__(exc_type, exc, traceback)

    def read_only(self, doing: str) -> Any:
        """Open a read-only connection (a :class:`~gwconfig.reconcile.state.Reader`) and the keys.

        Straight through the DBAPI driver when :func:`~gwconfig.db.direct.open_direct` can (no
        SQLAlchemy import: ~0.5 s of a short-lived plan), else through ``open_database``. Errors
        of the database are translated (as ``doing``) when the context closes.
        """
        from gwconfig.secrets.keys import load_encryption_keys

        source, url = self._stack.enter_context(reading_database(self.database_url, doing))
        self._keys = load_encryption_keys(url)
        return source

    def open(self) -> Database:
        """Open the database (disposed of when the context closes) and load its keys."""
        from gwconfig.db.session import open_database
        from gwconfig.secrets.keys import load_encryption_keys

        db = self._db = open_database(self.database_url)
        self._stack.callback(db.dispose)
        self._keys = load_encryption_keys(db.url)
        return db

    def lock(self, timeout: float) -> tuple[Connection, ActualState]:
        """The connection holding the apply lock and the state read on it (taken on first call).

        The lock is held, in one transaction, until the context closes; waiting for it is
        bounded by ``timeout`` seconds.
        """
        from gwconfig.db.lock import locked

        if self._locked is None:
            conn = self._stack.enter_context(locked(self.db, timeout))
            self._locked = conn, read_state(conn)
        return self._locked

    @property
    def db(self) -> Database:
        """The database :meth:`open` opened."""
        if self._db is None:
            raise RuntimeError("the database is not open")
        return self._db

    @property
    def keys(self) -> EncryptionKeys:
        """The encryption keys, as loaded (not yet bound to the stored secrets' keys)."""
        if self._keys is None:
            raise RuntimeError("the encryption keys are not loaded")
        return self._keys


def plan(path: str | None, database_url: str | None, options: PlanOptions) -> Plan:
    """``gwconfig plan``: compile, read the state (at the same time), resolve secrets, diff."""
    with gc_paused(), Context(database_url) as ctx:

        def read() -> tuple[Any, ActualState]:
            source = ctx.read_only("planning against")
            return source, read_state(source)

        reading = Alongside(read)
        config = compile_manifests(path, options.env, alongside=reading)
        source, state = reading.result()  # errors are translated when the context closes
        keys = ctx.keys.bind(state.stored_keys())  # refuse keys that cannot open the secrets
        desired = resolve_desired(
            config.data, keys, sources=config.sources, digest=config.content_hash
        )
        return compute_plan(source, state, desired, options)


def apply(
    path: str | None,
    database_url: str | None,
    options: PlanOptions,
    *,
    review: Review,
    write: WriteOptions = DEFAULT_WRITE,
) -> tuple[Plan, ApplyResult]:
    """``gwconfig apply PATH``: plan under the lock, review, write in one transaction.

    While a forked child parses the manifests, this process imports the writer, opens the
    database, takes the apply lock and reads the state (unless a person reviews the plan first,
    which happens without the lock); a problem in the manifests then rolls back and releases.
    """
    with Context(database_url) as ctx:

        def open_lock_read() -> None:
            import gwconfig.reconcile.apply  # noqa: F401  (imported while the child parses)

            ctx.open()
            if not write.interactive:  # nobody holds the lock while a person reads the plan
                ctx.lock(write.lock_timeout)

        opening = Alongside(open_lock_read)
        config = compile_manifests(path, options.env, alongside=opening)
        opening.result()
        planned = _Planned(
            lambda keys: resolve_desired(
                config.data, keys, sources=config.sources, digest=config.content_hash
            ),
            options,
            sha=git_sha(path),
        )
        who = settings.actor(write.actor)
        return _plan_and_write(ctx, planned, review, write, who)


def apply_saved(
    plan_file: str,
    database_url: str | None,
    *,
    review: Review,
    write: WriteOptions = DEFAULT_WRITE,
) -> tuple[Plan, ApplyResult]:
    """``gwconfig apply --plan FILE``: refuse if the DB or a secret moved since the plan."""
    try:
        raw = Path(plan_file).read_bytes()
    except OSError as exc:
        raise PlanError(f"cannot read plan file {plan_file}: {exc.strerror}") from None
    saved = Plan.from_json_bytes(raw)
    if saved.desired is None:
        raise PlanError(f"{plan_file} has no desired configuration (write it with plan --out)")
    desired_data = saved.desired
    planned = _Planned(
        lambda keys: resolve_desired(desired_data, keys), saved.options, git_sha(None), saved
    )
    who = settings.actor(write.actor)  # a bad actor is refused before the database is opened
    with Context(database_url) as ctx:
        ctx.open()
        return _plan_and_write(ctx, planned, review, write, who)


def rollback(
    database_url: str | None,
    number: int,
    *,
    review: Review,
    write: WriteOptions = DEFAULT_WRITE,
) -> tuple[Plan, ApplyResult]:
    """Plan and apply a return to revision ``number`` (secrets from its stored ciphertexts)."""
    from gwconfig.db.session import translate_errors
    from gwconfig.reconcile.stored_keys import read_stored_keys

    with Context(database_url) as ctx:
        db = ctx.open()
        with translate_errors(db.url, "reading a revision from"), db.connect() as conn:
            keys = ctx.keys.bind(read_stored_keys(conn))  # refuse keys that cannot open secrets
            snapshot = revision_row(conn, number)["snapshot"]
        plaintexts: dict[SecretScope, str] = {}
        for sid, token in (snapshot.get("ciphertexts") or {}).items():
            plaintexts[SecretScope.parse(sid)] = keys.decrypt(token)
        config = snapshot["config"]
        planned = _Planned(
            lambda k: resolve_desired(config, k, plaintexts=plaintexts),
            PlanOptions(prune=True),
            sha=None,
        )
        who = settings.actor(write.actor)
        return _plan_and_write(ctx, planned, review, write, who)


@dataclass(frozen=True)
class _Planned:
    """What a write plans: the desired configuration (from the keys bound to the stored
    secrets), the plan options, the commit applied, and the saved plan it must reproduce."""

    make_desired: Callable[[EncryptionKeys], Desired]
    options: PlanOptions
    sha: str | None
    saved: Plan | None = None


def _plan_and_write(
    ctx: Context, planned: _Planned, review: Review, write: WriteOptions, who: str
) -> tuple[Plan, ApplyResult]:
    """Plan under the lock (after a review without it when ``interactive``) and write."""
    from gwconfig.db.session import translate_errors
    from gwconfig.reconcile.apply import execute_plan
    from gwconfig.reconcile.bindings import extras_due, record_extras

    with gc_paused():
        reviewed: Plan | None = None
        if write.interactive:  # nobody holds the lock while a person reads the plan
            with translate_errors(ctx.db.url, "planning against"), ctx.db.connect() as conn:
                state = read_state(conn)
                keys, desired, reviewed = _plan_on(ctx, planned, conn, state)
                due = not reviewed.effective_changes and extras_due(conn, reviewed.desired, state)
            done = _settle(reviewed, state, planned.saved, review, write.max_deletes)
            if done is not None and not due:  # else: origins or the policy to record, locked
                return reviewed, done
        conn, state = ctx.lock(write.lock_timeout)
        if reviewed is not None:
            if (
                state.state_hash != reviewed.base_state_hash
                or ctx.keys.bind(state.stored_keys()).primary_id != keys.primary_id
            ):
                raise StalePlanError(REVIEW_STALE)
            plan = reviewed
        else:
            keys, desired, plan = _plan_on(ctx, planned, conn, state)
            done = _settle(plan, state, planned.saved, review, write.max_deletes)
            if done is not None:
                if not plan.effective_changes:  # origins and the egress policy still count
                    record_extras(conn, plan.desired, state, who)
                return plan, done
        result = execute_plan(
            conn,
            plan,
            base=state,
            values=desired.values,
            keys=keys,
            actor=who,
            git_sha=planned.sha,
        )
        return plan, result


def _plan_on(
    ctx: Context, planned: _Planned, conn: Connection, state: ActualState
) -> tuple[EncryptionKeys, Desired, Plan]:
    """The keys bound to the state's secrets (or a refusal), the desired config, the plan.

    A saved plan is refused when a secret or the database moved since it was made.
    """
    from gwconfig.reconcile.apply import check_base

    keys = ctx.keys.bind(state.stored_keys())
    desired = planned.make_desired(keys)
    saved = planned.saved
    if saved is not None:
        for sid, fp in saved.fingerprints.items():
            if desired.fingerprints.get(sid) != fp:
                raise StalePlanError(
                    f"plan is stale: the secret for {sid} changed since it was made; run plan again"
                )
        check_base(saved, state)
    return keys, desired, compute_plan(conn, state, desired, planned.options)


def _settle(
    plan: Plan, state: ActualState, saved: Plan | None, review: Review, max_deletes: int | None
) -> ApplyResult | None:
    """Check a fresh plan (against a saved one, for safety) and show it for review.

    Returns the result when the apply ends here (nothing to change, or the review declined),
    None when the plan is to be written.
    """
    from gwconfig.reconcile.apply import ApplyResult, check_safety

    if saved is not None and not plan.same_changes(saved):
        raise StalePlanError(SAVED_DIFFERS)
    if not plan.effective_changes:
        review(plan)
        return ApplyResult(None, plan.summary, state.state_hash)
    check_safety(plan, max_deletes)
    if not review(plan):
        return ApplyResult(None, {}, state.state_hash)
    return None


def git_sha(path: str | None = None) -> str | None:
    """The commit being applied: ``GITHUB_SHA``, else ``git rev-parse HEAD`` near ``path``."""
    if os.environ.get("GITHUB_SHA"):
        return settings.git_sha(os.environ["GITHUB_SHA"], "GITHUB_SHA")
    where = Path(path or ".")
    cwd = where if where.is_dir() else where.parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd if str(cwd) else ".",
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and 40 <= len(sha) <= col.GIT_SHA else None
