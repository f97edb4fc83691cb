"""``gwconfig dump``: the gateway database -> reviewed manifests (read only).

Reads the state once (:func:`gwconfig.reconcile.state.read_state`), opens the stored secrets
with the encryption keys only when they are to be sealed (``--secrets env`` needs no key), then
renders and writes with :mod:`gwconfig.adopt.writer`. Plaintexts live in memory between
decryption and sealing; nothing is written when anything fails before the files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gwconfig.adopt.tree import WriteReport, other_definitions, write_tree
from gwconfig.adopt.writer import SecretOutput, render_manifests
from gwconfig.entities import SecretScope
from gwconfig.errors import ConfigurationError, ValidationFailed
from gwconfig.manifests.limits import DEPTH_MESSAGE, MODEL_PARAMETERS_DEPTH, too_deep
from gwconfig.perf.gcpause import gc_paused
from gwconfig.reconcile.gateway_settings import EGRESS
from gwconfig.reconcile.state import read_state, reading_database, stored_setting
from gwconfig.settings import mask_url

if TYPE_CHECKING:
    from gwconfig.reconcile.state import ActualState


@dataclass(frozen=True)
class DumpOptions:
    """What to dump and where (``gwconfig dump``'s options)."""

    out_dir: Path
    output: SecretOutput
    database_url: str | None = None
    #: ``--target``: only these providers (every one must exist)
    targets: tuple[str, ...] = ()
    #: ``--select-tag``: only providers with one of these tags
    tags: tuple[str, ...] = ()
    #: asked with what the write would lose (see :func:`gwconfig.adopt.tree.losses`); a no
    #: writes nothing. ``None`` writes without asking.
    confirm: Callable[[list[str]], bool] | None = None

    @property
    def selective(self) -> bool:
        """True with ``--target`` or ``--select-tag`` (no Gateway document, no pruning)."""
        return bool(self.targets or self.tags)


@dataclass(frozen=True)
class DumpResult:
    """What was dumped (counts), the files written, and the ``{env: NAME}`` names handed out."""

    providers: int
    models: int
    api_keys: int
    parameters: int
    routes: int
    report: WriteReport
    consumers: int = 0
    env_names: list[tuple[str, str]] = field(default_factory=list)
    #: files left in the output directory that define a dumped provider again
    warnings: list[str] = field(default_factory=list)


def select_providers(
    data: Mapping[str, Any], targets: tuple[str, ...], tags: tuple[str, ...]
) -> dict[str, Any]:
    """``data`` with only the chosen providers and, when choosing, no gateway (routes span all)
    and no consumers.

    An unknown ``--target`` or a ``--select-tag`` no provider has is a :class:`ConfigurationError`.
    """
    if not targets and not tags:
        return dict(data)
    providers = data.get("providers") or []
    known = {p["provider_id"] for p in providers}
    missing = [t for t in targets if t not in known]
    if missing:
        raise ConfigurationError(
            f"--target {', '.join(missing)}: no provider has this id in the gateway database; "
            "nothing was written",
            hint="'gwconfig plan' or the database lists the provider ids",
        )
    chosen = set(targets)
    wanted = set(tags)
    chosen |= {p["provider_id"] for p in providers if wanted.intersection(p.get("tags") or ())}
    unmatched = [t for t in tags if not any(t in (p.get("tags") or ()) for p in providers)]
    if unmatched:
        raise ConfigurationError(
            f"--select-tag {', '.join(unmatched)}: no provider has this tag; nothing was written"
        )
    chosen_data = {
        **data,
        "providers": [p for p in providers if p["provider_id"] in chosen],
        "gateway": {"default_route": None, "routes": []},
    }
    chosen_data.pop("consumers", None)
    return chosen_data


def _plaintexts(data: Mapping[str, Any], state: ActualState, url: str) -> dict[SecretScope, str]:
    """The plaintext of every stored secret of the chosen providers (keys must open them all)."""
    from gwconfig.secrets.keys import load_encryption_keys

    chosen = {p["provider_id"] for p in data["providers"]}
    wanted = {scope: token for scope, token in state.secrets.items() if scope.provider_id in chosen}
    if not wanted:
        return {}
    keys = load_encryption_keys(url).bind(state.stored_keys(), single=False)
    return {scope: keys.decrypt(token) for scope, token in wanted.items()}


def _check_depth(data: Mapping[str, Any]) -> None:
    """Refuse to write a model's ``parameters`` nested deeper than a manifest may hold (rows
    written behind gwconfig's back): ``validate`` would refuse the file."""
    for p in data["providers"]:
        for m in p["models"]:
            deep = too_deep(m["parameters"], MODEL_PARAMETERS_DEPTH)
            if deep is not None:
                field = ".".join(map(str, ("parameters", *deep[:6]))) + "..."
                raise ValidationFailed(
                    f"provider {p['provider_id']!r}, model {m['model_id']!r}: {field}: "
                    f"{DEPTH_MESSAGE}, which no manifest may hold; nothing was written",
                    hint="the row was written behind gwconfig's back: fix it with SQL",
                )


def dump(options: DumpOptions) -> DumpResult:
    """``gwconfig dump``: read the gateway database, render its manifests, write what changed."""

    with gc_paused():
        with reading_database(options.database_url, "dumping") as (source, url):
            state = read_state(source)
            egress = stored_setting(source, EGRESS)
        if egress is not None:  # the applied egress policy goes back into the Gateway manifest
            state.data["gateway"]["egress"] = egress
        if not state.data["providers"] and not state.data["gateway"]["routes"]:
            raise ConfigurationError(
                f"the gateway database {mask_url(url)} is empty (no providers, no routes); "
                "nothing was written",
                hint="check --database-url / GWCONFIG_DATABASE_URL: dumping an empty database "
                "would remove every manifest in the output directory",
            )
        data = select_providers(state.data, options.targets, options.tags)
        _check_depth(data)
        plain: dict[SecretScope, str] = {}
        if options.output.mode == "sealed":
            plain = _plaintexts(data, state, url)
        rendered = render_manifests(data, plain, options.output)
        del plain
        report = write_tree(
            rendered.files, options.out_dir, prune=not options.selective, confirm=options.confirm
        )
    providers = data["providers"]
    ids = {p["provider_id"] for p in providers}
    return DumpResult(
        providers=len(providers),
        models=sum(len(p["models"]) for p in providers),
        api_keys=sum(len(p["api_keys"]) for p in providers),
        parameters=sum(len(p["connection_parameters"]) for p in providers),
        routes=len(data["gateway"]["routes"]),
        report=report,
        consumers=len(data.get("consumers") or ()),
        env_names=rendered.env_names,
        warnings=other_definitions(options.out_dir, rendered.files, ids),
    )
