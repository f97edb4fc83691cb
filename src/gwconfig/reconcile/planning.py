"""The steps of planning, pure of orchestration: compile -> resolve secrets -> diff -> Plan.

The commands of :mod:`gwconfig.reconcile.commands` open the database and read the state, then
call these in order; nothing here opens, locks or writes anything. Plaintext secrets exist only
in memory between resolution and encryption; plans carry fingerprints and references.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gwconfig import settings
from gwconfig.canonical import content_hash
from gwconfig.db import columns as col
from gwconfig.entities import SecretScope
from gwconfig.errors import Diagnostic, ManifestError, SecretError
from gwconfig.manifests import compile_path
from gwconfig.reconcile.diff import diff, selected_providers
from gwconfig.reconcile.plan import Plan, PlanOptions
from gwconfig.reconcile.revisions import snapshot_state
from gwconfig.reconcile.state import reader, revision_snapshot, revision_state_hash
from gwconfig.secrets.resolve import MissingSecretError, resolve_secret

if TYPE_CHECKING:
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
    return compile_path(Path(path or settings.DEFAULT_MANIFEST_PATH), env=env, alongside=alongside)


def _drift(source: Any, state: ActualState) -> tuple[int | None, frozenset[str]]:
    """(revision, drifted entity keys) when the DB moved since the last revision."""
    if state.last_revision is None:
        return None, frozenset()
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
