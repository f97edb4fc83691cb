"""Planning: compile the manifests, resolve their secrets, read the state and diff (no writes).

``make_plan`` is ``gwconfig plan``; :mod:`gwconfig.reconcile.engine` builds ``apply`` and
``rollback``
on the same steps. Plaintext secrets exist only in memory between resolution and encryption;
plans carry fingerprints and references.
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
from gwconfig.errors import Diagnostic, ManifestError, SecretError
from gwconfig.perf.forking import Alongside
from gwconfig.perf.gcpause import gc_paused
from gwconfig.reconcile.plan import Plan, PlanOptions

if TYPE_CHECKING:
    from gwconfig.db.session import Database
    from gwconfig.manifests.compile import CompiledConfig
    from gwconfig.reconcile.state import ActualState
    from gwconfig.secrets.keys import EncryptionKeys


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
    from gwconfig.secrets.resolve import MissingSecretError, resolve_secret

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
    from gwconfig.reconcile.diff import diff
    from gwconfig.reconcile.revisions import snapshot_state
    from gwconfig.reconcile.state import reader, revision_snapshot, revision_state_hash

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

    ``source``: the SQLAlchemy connection or :class:`~gwconfig.reconcile.state.Reader` the state
    was read on.
    """
    from gwconfig.reconcile.diff import diff, selected_providers

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


def open_with_keys(database_url: str | None) -> tuple[Database, EncryptionKeys]:
    from gwconfig.db.session import open_database
    from gwconfig.secrets.keys import load_encryption_keys

    db = open_database(database_url)
    return db, load_encryption_keys(db.url)


@contextmanager
def reading_state(database_url: str | None, doing: str) -> Iterator[tuple[Any, EncryptionKeys]]:
    """A read-only connection (a :class:`~gwconfig.reconcile.state.Reader`) and the encryption keys.

    Straight through the DBAPI driver when :func:`~gwconfig.db.direct.open_direct` can (no
    SQLAlchemy import: ~0.5 s of a short-lived plan), else through :func:`open_database`.
    """
    from gwconfig.reconcile.state import reading_database
    from gwconfig.secrets.keys import load_encryption_keys

    with reading_database(database_url, doing) as (source, url):
        yield source, load_encryption_keys(url)


def make_plan(path: str | None, database_url: str | None, options: PlanOptions) -> Plan:
    """``gwconfig plan``: compile, read the state (at the same time), resolve secrets, diff."""
    from gwconfig.reconcile.state import read_state

    with gc_paused(), ExitStack() as stack:

        def read() -> tuple[Any, EncryptionKeys, ActualState]:
            source, keys = stack.enter_context(reading_state(database_url, "planning against"))
            return source, keys, read_state(source)

        reading = Alongside(read)
        config = compile_manifests(path, options.env, alongside=reading)
        source, keys, state = reading.result()  # errors are translated by reading_state on exit
        keys = keys.bind(state.stored_keys())  # refuse keys that cannot open the secrets
        desired = resolve_desired(
            config.data, keys, sources=config.sources, digest=config.content_hash
        )
        return compute_plan(source, state, desired, options)
