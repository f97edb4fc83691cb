"""Orchestration used by the CLI: compile, open the DB, read state, resolve secrets, diff, apply.

Plain functions (as Alembic's ``command.py``): ``make_plan``, ``apply_manifests``,
``apply_saved_plan``, ``rollback``, ``history``, ``show_revision``. Plaintext secrets exist only
in memory between resolution and encryption; plans carry fingerprints and references.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gwconfig import settings
from gwconfig.entities import SecretScope
from gwconfig.errors import StalePlanError
from gwconfig.perf.forking import Alongside
from gwconfig.perf.gcpause import gc_paused
from gwconfig.reconcile.plan import Plan
from gwconfig.reconcile.plan import (
    PlanOptions as PlanOptions,  # was defined here: callers use it here
)
from gwconfig.reconcile.planning import (
    Desired,
    compile_manifests,
    compute_plan,
    git_sha,
    open_with_keys,
    resolve_desired,
)
from gwconfig.reconcile.planning import make_plan as make_plan  # the CLI's entry points live here

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from gwconfig.db.session import Database
    from gwconfig.reconcile.apply import ApplyResult
    from gwconfig.reconcile.state import ActualState
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


@dataclass(frozen=True)
class ApplyRequest:
    """One plan-and-write: what to plan, how to review it, and what the caller already holds.

    ``opened``: the database and keys, opened by the caller (who then disposes of them);
    ``held``: a connection already holding the lock (inside the caller's ``locked`` block) and
    the state read on it (the fork/overlap of :func:`apply_manifests`).
    """

    database_url: str | None
    make_desired: Callable[[EncryptionKeys], Desired]
    options: PlanOptions
    review: Review
    write: WriteOptions
    sha: str | None
    saved: Plan | None = None
    opened: tuple[Database, EncryptionKeys] | None = None
    held: tuple[Connection, ActualState] | None = None


def _apply(request: ApplyRequest) -> tuple[Plan, ApplyResult]:
    with gc_paused():
        return _plan_and_apply(request)


def _plan_and_apply(request: ApplyRequest) -> tuple[Plan, ApplyResult]:
    """Plan under the lock (after a review without it when ``interactive``) and write."""
    from gwconfig.db.lock import locked
    from gwconfig.db.session import translate_errors
    from gwconfig.reconcile.apply import check_base, execute_plan
    from gwconfig.reconcile.bindings import extras_due, record_extras
    from gwconfig.reconcile.state import read_state

    r, w = request, request.write
    saved, review, max_deletes, held = r.saved, r.review, w.max_deletes, r.held
    who = settings.actor(w.actor)  # a bad actor is refused before the database is opened
    db, given = r.opened if r.opened is not None else open_with_keys(r.database_url)

    def plan_on(conn: Connection, state: ActualState) -> tuple[EncryptionKeys, Desired, Plan]:
        """The keys bound to the state's secrets (or a refusal), the desired config, the plan.

        A saved plan is refused when a secret or the database moved since it was made.
        """
        keys = given.bind(state.stored_keys())
        desired = r.make_desired(keys)
        if saved is not None:
            for sid, fp in saved.fingerprints.items():
                if desired.fingerprints.get(sid) != fp:
                    raise StalePlanError(
                        f"plan is stale: the secret for {sid} changed since it was made; "
                        "run plan again"
                    )
            check_base(saved, state)
        return keys, desired, compute_plan(conn, state, desired, r.options)

    try:
        reviewed: Plan | None = None
        if w.interactive:  # nobody holds the lock while a person reads the plan
            with translate_errors(db.url, "planning against"), db.connect() as conn:
                state = read_state(conn)
                keys, desired, reviewed = plan_on(conn, state)
                due = not reviewed.effective_changes and extras_due(conn, reviewed.desired, state)
            done = _settle(reviewed, state, saved, review, max_deletes)
            if done is not None and not due:  # else: origins or the policy to record, locked
                return reviewed, done
        with ExitStack() as lock:
            if held is not None:
                conn, state = held
            else:
                conn = lock.enter_context(locked(db, w.lock_timeout))
                state = read_state(conn)
            if reviewed is not None:
                if (
                    state.state_hash != reviewed.base_state_hash
                    or given.bind(state.stored_keys()).primary_id != keys.primary_id
                ):
                    raise StalePlanError(REVIEW_STALE)
                plan = reviewed
            else:
                keys, desired, plan = plan_on(conn, state)
                done = _settle(plan, state, saved, review, max_deletes)
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
                git_sha=r.sha,
            )
            return plan, result
    finally:
        if r.opened is None:
            db.dispose()


def apply_manifests(
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
    with ExitStack() as stack:

        def open_lock_read() -> tuple[Database, EncryptionKeys, Any]:
            from gwconfig.reconcile.apply import (
                locked,  # the writer and SQLAlchemy, while a child parses
            )
            from gwconfig.reconcile.state import read_state

            db, keys = open_with_keys(database_url)
            stack.callback(db.dispose)
            if write.interactive:  # nobody holds the lock while a person reads the plan
                return db, keys, None
            conn = stack.enter_context(locked(db, write.lock_timeout))
            return db, keys, (conn, read_state(conn))

        opening = Alongside(open_lock_read)
        config = compile_manifests(path, options.env, alongside=opening)
        db, keys, held = opening.result()
        return _apply(
            ApplyRequest(
                database_url,
                lambda keys: resolve_desired(
                    config.data, keys, sources=config.sources, digest=config.content_hash
                ),
                options,
                review=review,
                write=write,
                sha=git_sha(path),
                opened=(db, keys),
                held=held,
            )
        )


def apply_saved_plan(
    plan_file: str,
    database_url: str | None,
    *,
    review: Review,
    write: WriteOptions = DEFAULT_WRITE,
) -> tuple[Plan, ApplyResult]:
    """``gwconfig apply --plan FILE``: refuse if the DB or a secret moved since the plan."""
    from gwconfig.errors import PlanError

    try:
        raw = Path(plan_file).read_bytes()
    except OSError as exc:
        raise PlanError(f"cannot read plan file {plan_file}: {exc.strerror}") from None
    saved = Plan.from_json_bytes(raw)
    if saved.desired is None:
        raise PlanError(f"{plan_file} has no desired configuration (write it with plan --out)")
    desired_data = saved.desired
    return _apply(
        ApplyRequest(
            database_url,
            lambda keys: resolve_desired(desired_data, keys),
            saved.options,
            review=review,
            write=write,
            sha=git_sha(None),
            saved=saved,
        )
    )


def rollback(
    database_url: str | None,
    number: int,
    *,
    review: Review,
    write: WriteOptions = DEFAULT_WRITE,
) -> tuple[Plan, ApplyResult]:
    """Plan and apply a return to revision ``number`` (secrets from its stored ciphertexts)."""
    from gwconfig.db.session import translate_errors
    from gwconfig.reconcile.revisions import revision_row
    from gwconfig.reconcile.stored_keys import read_stored_keys

    db, keys = open_with_keys(database_url)
    try:
        with translate_errors(db.url, "reading a revision from"), db.connect() as conn:
            keys = keys.bind(read_stored_keys(conn))  # refuse keys that cannot open the secrets
            snapshot = revision_row(conn, number)["snapshot"]
    finally:
        db.dispose()
    plaintexts: dict[SecretScope, str] = {}
    for sid, token in (snapshot.get("ciphertexts") or {}).items():
        plaintexts[SecretScope.parse(sid)] = keys.decrypt(token)
    config = snapshot["config"]
    return _apply(
        ApplyRequest(
            database_url,
            lambda k: resolve_desired(config, k, plaintexts=plaintexts),
            PlanOptions(prune=True),
            review=review,
            write=write,
            sha=None,
        )
    )
