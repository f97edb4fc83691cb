"""Orchestration used by the CLI: compile, open the DB, read state, resolve secrets, diff, apply.

Plain functions (as Alembic's ``command.py``): ``make_plan``, ``apply_manifests``,
``apply_saved_plan``, ``rollback``, ``history``, ``show_revision``. Plaintext secrets exist only
in memory between resolution and encryption; plans carry fingerprints and references.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gwconfig import settings
from gwconfig.canonical import content_hash
from gwconfig.db import columns as col
from gwconfig.entities import SecretScope
from gwconfig.errors import Diagnostic, ManifestError, SecretError, StalePlanError
from gwconfig.forking import Alongside
from gwconfig.gcpause import gc_paused
from gwconfig.plan import Plan
from gwconfig.plan import PlanOptions as PlanOptions  # was defined here: callers use it here

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from gwconfig.apply import ApplyResult
    from gwconfig.compile import CompiledConfig
    from gwconfig.db.session import Database
    from gwconfig.secrets import EncryptionKeys
    from gwconfig.state import ActualState

Review = Callable[[Plan], bool]
SAVED_DIFFERS = (
    "plan is stale: planning again now gives other changes than the saved plan (was it made "
    "by another gwconfig version?); run plan again"
)
REVIEW_STALE = (
    "plan is stale: the database changed while the plan was being reviewed; nothing was "
    "applied; run apply again"
)


@dataclass
class Desired:
    """The desired configuration: with references, comparable (fingerprints), and plaintexts."""

    data: Mapping[str, Any]
    content_hash: str
    comparable: dict[str, Any]
    values: dict[SecretScope, str] = field(repr=False, default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)


def resolve_desired(
    data: Mapping[str, Any],
    keys: EncryptionKeys,
    *,
    sources: Mapping[str, Any] | None = None,
    plaintexts: Mapping[SecretScope, str] | None = None,
    digest: str | None = None,
) -> Desired:
    """Resolve every secret reference to a fingerprint (unknown when the variable is missing).

    ``plaintexts`` (rollback) supplies values directly instead of resolving references;
    ``digest`` is ``content_hash(data)`` when the caller has it already (a compiled config).
    """
    from gwconfig.secrets import MissingSecretError, resolve_secret

    values: dict[SecretScope, str] = {}
    fingerprints: dict[str, str] = {}
    providers = []

    def resolve(ref: Any, scope: SecretScope) -> dict[str, str]:
        try:
            if plaintexts is not None and scope in plaintexts:
                plain = plaintexts[scope]
            else:
                plain = resolve_secret(ref, scope)
            why = col.too_long_text(plain, col.SECRET_BYTES)
            if why is not None:  # its ciphertext would not fit the column
                raise SecretError(
                    f"the secret of {scope.provider_id}/{scope.kind}:{scope.name} is {why}"
                )
        except MissingSecretError as exc:
            return {"unknown": exc.message.split(" (secret for ")[0]}
        except SecretError as exc:
            src = (sources or {}).get(scope.id)
            if src is None:
                raise
            raise ManifestError(Diagnostic(src.path, src.line, src.col, exc.message)) from None
        values[scope] = plain
        fp: str = keys.fingerprint(plain)
        fingerprints[scope.id] = fp
        return {"fingerprint": fp}

    for p in data.get("providers", ()):
        secrets_here = p.get("api_keys") or any(
            c.get("sensitive") for c in p.get("connection_parameters", ())
        )
        if not secrets_here:
            providers.append(p)
            continue
        pid = p["provider_id"]
        q = dict(p)
        q["api_keys"] = [
            {**k, "value": resolve(k["value"], SecretScope.of("api_key", pid, k))}
            for k in p["api_keys"]
        ]
        q["connection_parameters"] = [
            {**c, "value": resolve(c["value"], SecretScope.of("connection_parameter", pid, c))}
            if c["sensitive"]
            else c
            for c in p["connection_parameters"]
        ]
        providers.append(q)
    comparable = {**data, "providers": providers}
    return Desired(data, digest or content_hash(data), comparable, values, fingerprints)


def compile_manifests(
    path: str | None, env: str | None, *, alongside: Callable[[], None] | None = None
) -> CompiledConfig:
    """Compile the manifests at ``path`` (default ``providers.d``) into a CompiledConfig.

    ``alongside`` runs while a second process parses (see :func:`compile_path`).
    """
    from gwconfig.manifests import compile_path

    return compile_path(Path(path or settings.DEFAULT_MANIFEST_PATH), env=env, alongside=alongside)


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


def _drift(source: Any, state: ActualState) -> tuple[int | None, frozenset[str]]:
    """(revision, drifted entity keys) when the DB moved since the last revision."""
    if state.last_revision is None:
        return None, frozenset()
    from gwconfig.diff import diff
    from gwconfig.revisions import snapshot_state
    from gwconfig.state import reader, revision_snapshot, revision_state_hash

    rows = reader(source)
    stored_hash = revision_state_hash(rows, state.last_revision)
    if stored_hash is None or stored_hash == state.state_hash:
        return None, frozenset()
    _, snapshot = revision_snapshot(rows, state.last_revision) or (None, None)
    if not isinstance(snapshot, dict) or "config" not in snapshot:
        return state.last_revision, frozenset()  # a revision written by an older tool
    expected = snapshot_state(snapshot)
    moved = diff(state.data, expected).changes  # what happened since: expected -> actual
    return state.last_revision, frozenset(c.key for c in moved)


def compute_plan(source: Any, state: ActualState, desired: Desired, options: PlanOptions) -> Plan:
    """Diff desired against the state read on ``source``, with drift markers and metadata.

    ``source``: the SQLAlchemy connection or :class:`~gwconfig.state.Reader` the state was read on.
    """
    from gwconfig.diff import diff, selected_providers

    revision, drifted = _drift(source, state)
    selected = selected_providers(desired.comparable, state.data, options.targets, options.tags)
    found = diff(
        desired.comparable,
        state.data,
        prune=options.prune,
        selected=selected,
        drift_keys=drifted,
        drift_revision=revision,
    )
    warnings = list(found.warnings)
    known = {p["provider_id"] for p in desired.comparable.get("providers", ())}
    known |= {p["provider_id"] for p in state.data.get("providers", ())}
    warnings += [
        f"--target {t}: no provider has this id" for t in options.targets if t not in known
    ]
    if options.tags and not selected_providers(desired.comparable, state.data, (), options.tags):
        warnings.append(f"--select-tag {', '.join(options.tags)}: no provider has this tag")
    return Plan(  # the one place a plan is assembled
        base_state_hash=state.state_hash,
        desired_hash=desired.content_hash,
        drift_revision=revision,
        options=options,
        warnings=tuple(warnings),
        changes=found.changes,
        desired=desired.data,
        fingerprints=desired.fingerprints,
    )


def _open(database_url: str | None) -> tuple[Database, EncryptionKeys]:
    from gwconfig.db.session import open_database
    from gwconfig.secrets import load_encryption_keys

    db = open_database(database_url)
    return db, load_encryption_keys(db.url)


@contextmanager
def _reading(database_url: str | None, doing: str) -> Iterator[tuple[Any, EncryptionKeys]]:
    """A read-only connection (a :class:`~gwconfig.state.Reader`) and the encryption keys.

    Straight through the DBAPI driver when :func:`~gwconfig.db.direct.open_direct` can (no
    SQLAlchemy import: ~0.5 s of a short-lived plan), else through :func:`open_database`.
    """
    from gwconfig.db.direct import open_direct
    from gwconfig.secrets import load_encryption_keys

    url = settings.database_url(database_url)
    direct = open_direct(url)
    if direct is not None:
        with direct, direct.translate_errors(doing):
            yield direct, load_encryption_keys(url)
        return
    from gwconfig.db.session import translate_errors

    db, keys = _open(database_url)
    try:
        with translate_errors(db.url, doing), db.connect() as conn:
            yield conn, keys
    finally:
        db.dispose()


def make_plan(path: str | None, database_url: str | None, options: PlanOptions) -> Plan:
    """``gwconfig plan``: compile, read the state (at the same time), resolve secrets, diff."""
    from gwconfig.state import read_state

    with gc_paused(), ExitStack() as stack:

        def read() -> tuple[Any, EncryptionKeys, ActualState]:
            source, keys = stack.enter_context(_reading(database_url, "planning against"))
            return source, keys, read_state(source)

        reading = Alongside(read)
        config = compile_manifests(path, options.env, alongside=reading)
        source, keys, state = reading.result()  # errors are translated by _reading on exit
        keys = keys.bind(state.stored_keys())  # refuse keys that cannot open the secrets
        desired = resolve_desired(
            config.data, keys, sources=config.sources, digest=config.content_hash
        )
        return compute_plan(source, state, desired, options)


def _settle(
    plan: Plan, state: ActualState, saved: Plan | None, review: Review, max_deletes: int | None
) -> ApplyResult | None:
    """Check a fresh plan (against a saved one, for safety) and show it for review.

    Returns the result when the apply ends here (nothing to change, or the review declined),
    None when the plan is to be written.
    """
    from gwconfig.apply import ApplyResult, check_safety

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
    actor: str | None
    sha: str | None
    lock_timeout: float
    max_deletes: int | None
    saved: Plan | None = None
    interactive: bool = False
    opened: tuple[Database, EncryptionKeys] | None = None
    held: tuple[Connection, ActualState] | None = None


def _apply(request: ApplyRequest) -> tuple[Plan, ApplyResult]:
    with gc_paused():
        return _plan_and_apply(request)


def _plan_and_apply(request: ApplyRequest) -> tuple[Plan, ApplyResult]:
    """Plan under the lock (after a review without it when ``interactive``) and write."""
    from gwconfig.apply import check_base, execute_plan
    from gwconfig.db.lock import locked
    from gwconfig.db.session import translate_errors
    from gwconfig.state import read_state

    r = request
    saved, review, max_deletes, held = r.saved, r.review, r.max_deletes, r.held
    who = settings.actor(r.actor)  # a bad actor is refused before the database is opened
    db, given = r.opened if r.opened is not None else _open(r.database_url)

    def prepare(state: ActualState) -> tuple[EncryptionKeys, Desired]:
        """The keys bound to the state's secrets (or a refusal), and the desired config."""
        keys = given.bind(state.stored_keys())
        desired = r.make_desired(keys)
        if saved is not None:
            for sid, fp in saved.fingerprints.items():
                if desired.fingerprints.get(sid) != fp:
                    raise StalePlanError(
                        f"plan is stale: the secret for {sid} changed since it was made; "
                        "run plan again"
                    )
        return keys, desired

    try:
        reviewed: Plan | None = None
        if r.interactive:  # nobody holds the lock while a person reads the plan
            with translate_errors(db.url, "planning against"), db.connect() as conn:
                state = read_state(conn)
                keys, desired = prepare(state)
                if saved is not None:
                    check_base(saved, state)
                reviewed = compute_plan(conn, state, desired, r.options)
            done = _settle(reviewed, state, saved, review, max_deletes)
            if done is not None:
                return reviewed, done
        with ExitStack() as lock:
            if held is not None:
                conn, state = held
            else:
                conn = lock.enter_context(locked(db, r.lock_timeout))
                state = read_state(conn)
            if reviewed is not None:
                if (
                    state.state_hash != reviewed.base_state_hash
                    or given.bind(state.stored_keys()).primary_id != keys.primary_id
                ):
                    raise StalePlanError(REVIEW_STALE)
                plan = reviewed
            else:
                keys, desired = prepare(state)
                if saved is not None:
                    check_base(saved, state)
                plan = compute_plan(conn, state, desired, r.options)
                done = _settle(plan, state, saved, review, max_deletes)
                if done is not None:
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
    actor: str | None = None,
    lock_timeout: float = 60.0,
    max_deletes: int | None = 20,
    interactive: bool = False,
) -> tuple[Plan, ApplyResult]:
    """``gwconfig apply PATH``: plan under the lock, review, write in one transaction.

    While a forked child parses the manifests, this process imports the writer, opens the
    database, takes the apply lock and reads the state (unless a person reviews the plan first,
    which happens without the lock); a problem in the manifests then rolls back and releases.
    """
    with ExitStack() as stack:

        def open_lock_read() -> tuple[Database, EncryptionKeys, Any]:
            from gwconfig.apply import locked  # the writer and SQLAlchemy, while a child parses
            from gwconfig.state import read_state

            db, keys = _open(database_url)
            stack.callback(db.dispose)
            if interactive:  # nobody holds the lock while a person reads the plan
                return db, keys, None
            conn = stack.enter_context(locked(db, lock_timeout))
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
                actor=actor,
                sha=git_sha(path),
                lock_timeout=lock_timeout,
                max_deletes=max_deletes,
                interactive=interactive,
                opened=(db, keys),
                held=held,
            )
        )


def apply_saved_plan(
    plan_file: str,
    database_url: str | None,
    *,
    review: Review,
    actor: str | None = None,
    lock_timeout: float = 60.0,
    max_deletes: int | None = 20,
    interactive: bool = False,
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
            actor=actor,
            sha=git_sha(None),
            lock_timeout=lock_timeout,
            max_deletes=max_deletes,
            saved=saved,
            interactive=interactive,
        )
    )


def rollback(
    database_url: str | None,
    number: int,
    *,
    review: Review,
    actor: str | None = None,
    lock_timeout: float = 60.0,
    max_deletes: int | None = 20,
    interactive: bool = False,
) -> tuple[Plan, ApplyResult]:
    """Plan and apply a return to revision ``number`` (secrets from its stored ciphertexts)."""
    from gwconfig.db.session import translate_errors
    from gwconfig.revisions import revision_row
    from gwconfig.state import read_stored_keys

    db, keys = _open(database_url)
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
            actor=actor,
            sha=None,
            lock_timeout=lock_timeout,
            max_deletes=max_deletes,
            interactive=interactive,
        )
    )
