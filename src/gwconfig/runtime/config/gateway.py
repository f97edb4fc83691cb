"""GatewayConfig: the immutable, indexed configuration the runtime routes with.

Built from the canonical configuration (:mod:`gwconfig.canonical`) by
:func:`build_gateway_config` with the secrets already resolved for one runtime environment.
Two configs compare equal when they describe the same providers, models, keys, routes and
consumers, wherever they were loaded from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from gwconfig.canonical import DEFAULT_DEADLINE_SECONDS, DEFAULT_MAX_RESPONSE_BYTES
from gwconfig.errors import GwconfigError
from gwconfig.runtime.config.consumers import ConsumerPolicy
from gwconfig.runtime.config.shared_state import SharedStatePolicy
from gwconfig.runtime.config.table import ModelConfig, ModelTable
from gwconfig.runtime.errors import AmbiguousModelError, NoRouteError, UnknownModelError
from gwconfig.runtime.scrub import NO_SECRETS, Secrets
from gwconfig.runtime.suggest import NameIndex, miss_hint

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RequestSettings:
    """Timeouts, retries, backoff and cooldown for one provider (canonical defaults)."""

    timeout_seconds: float = 60.0
    connect_timeout_seconds: float = 10.0
    max_retries: int = 2
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    backoff_multiplier: float = 2.0
    jitter: bool = True
    retry_on_status: frozenset[int] = frozenset((408, 409, 429, 500, 502, 503, 504))
    cooldown_failures: int = 3
    cooldown_seconds: float = 30.0
    rate_limit_rpm: int | None = None
    rate_limit_tpm: int | None = None
    max_concurrent_requests: int | None = None
    #: the longest a request may take, counted from its start, across retries and fallbacks
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS
    #: the most bytes a reply (a JSON body, or all the events of a stream) may have
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RequestSettings:
        """Settings from a canonical ``request_settings`` dict (unknown keys ignored)."""
        kwargs = {k: data[k] for k in _SETTING_NAMES if k in data}
        if "retry_on_status" in kwargs:
            kwargs["retry_on_status"] = frozenset(kwargs["retry_on_status"])
        return cls(**kwargs)


_SETTING_NAMES = tuple(f.name for f in fields(RequestSettings))


class ApiKey:
    """An API key of the runtime's environment, opened on first use (decrypt, env, file, unseal).

    ``value`` is None when the secret cannot be opened; ``error`` then says why (never the value).
    Keys are opened lazily so that loading thousands of providers costs no decryption up front.
    """

    __slots__ = ("_done", "_error", "_opener", "_value", "environment", "expires_at", "name")

    def __init__(
        self,
        name: str,
        environment: str,
        value: str | None = None,
        expires_at: float | None = None,
        error: str | None = None,
        *,
        opener: Callable[[], str] | None = None,
    ) -> None:
        self.name = name
        self.environment = environment
        self.expires_at = expires_at  # POSIX timestamp
        self._value = value
        self._error = error
        self._opener = opener
        self._done = opener is None

    def _open(self) -> None:
        if self._done:
            return
        assert self._opener is not None
        try:
            self._value = self._opener()
        except GwconfigError as exc:  # only requests to this provider fail, with this reason
            self._error = str(exc)
        self._opener = None
        self._done = True

    @property
    def value(self) -> str | None:
        """The plaintext key, or None when it cannot be opened."""
        if not self._done:
            self._open()
        return self._value

    @property
    def error(self) -> str | None:
        """Why the key cannot be opened (no secret in the message), or None."""
        if not self._done:
            self._open()
        return self._error

    def usable(self, now: float) -> bool:
        """True when the key has not expired at ``now`` and can be opened."""
        return (self.expires_at is None or self.expires_at > now) and self.value is not None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ApiKey):
            return NotImplemented
        mine = (self.name, self.environment, self.expires_at, self.value, self.error)
        return mine == (other.name, other.environment, other.expires_at, other.value, other.error)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ApiKey(name={self.name!r}, environment={self.environment!r}, value=***)"


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One provider with its connection, settings, the environment's keys and its models."""

    provider_id: str
    provider_type: str
    display_name: str
    enabled: bool
    api_base: str | None
    api_version: str | None
    headers: Mapping[str, str]
    settings: RequestSettings
    api_keys: tuple[ApiKey, ...]  # best first: exact environment, then "default"
    params: Mapping[str, Any] = field(repr=False)
    param_errors: Mapping[str, str]
    models: ModelTable = field(repr=False)
    tags: tuple[str, ...] = ()
    #: every environment the provider has API keys for (not only the runtime's)
    key_environments: tuple[str, ...] = ()
    #: every secret of the provider, for scrubbing provider output (see gwconfig.runtime.scrub)
    secrets: Secrets = field(default=NO_SECRETS, compare=False, repr=False)
    #: secrets held back: bound to another origin (the provider is then not called)
    origin_errors: tuple[str, ...] = ()

    def api_key(self, now: float) -> ApiKey | None:
        """The best usable key at ``now`` (never an expired one), or None."""
        for key in self.api_keys:
            if key.usable(now):
                return key
        return None

    def same_connection(self, other: ProviderConfig) -> bool:
        """True when ``other`` talks to the provider identically (so a client can be reused)."""
        return (
            self.provider_type == other.provider_type
            and self.api_base == other.api_base
            and self.api_version == other.api_version
            and self.headers == other.headers
            and self.settings == other.settings
            and self.params == other.params
        )


@dataclass(frozen=True, slots=True)
class Target:
    """A provider/model pair a request can be sent to."""

    provider: ProviderConfig
    model: ModelConfig

    @property
    def key(self) -> str:
        """``provider_id/model_id``."""
        return f"{self.provider.provider_id}/{self.model.model_id}"


@dataclass(frozen=True, slots=True)
class TargetGroup:
    """Targets of one route in order; ``weights`` set for the weighted strategy."""

    targets: tuple[Target, ...]
    weights: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a model identifier resolves to: ordered groups of targets (route, then fallbacks)."""

    identifier: str
    route: str | None
    groups: tuple[TargetGroup, ...]


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """A named route of the Gateway document."""

    name: str
    strategy: str
    targets: tuple[tuple[str, str, int], ...]  # (provider_id, model_id, weight)
    fallbacks: tuple[str, ...]
    description: str | None = None


@dataclass(frozen=True, eq=False)
class GatewayConfig:
    """The immutable, indexed gateway configuration for one runtime environment.

    The alias index is built up front (few models declare aliases); which providers serve a bare
    model id is looked up on first use and remembered, so loading does not walk every model.
    """

    providers: Mapping[str, ProviderConfig]
    routes: Mapping[str, RouteConfig]
    default_route: str | None
    environment: str
    #: the content hash, or a zero-argument callable computing it on first access
    _content_hash: str | Callable[[], str] | None = field(default=None, repr=False)
    version: Any = None  # source-specific change token (revision number, file stamp)
    source: str | None = None
    loader: Any = field(default=None, repr=False)  # the ConfigLoader that made it (for reload)
    #: each ``kind: Consumer`` by name, its alias entries resolved (see ``build_gateway_config``)
    consumers: Mapping[str, ConsumerPolicy] = field(default_factory=lambda: _EMPTY)
    shared_state: SharedStatePolicy = field(default_factory=SharedStatePolicy)  # when Redis fails
    _aliases: dict[str, list[tuple[str, str]]] = field(default_factory=dict, repr=False)
    _bare: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _cache: dict[tuple[str | None, str | None], Resolution] = field(
        default_factory=dict, repr=False
    )
    #: built on the first miss: the did-you-mean index, and every alias -> its provider
    _hints: tuple[NameIndex, dict[str, ProviderConfig]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        aliases = self._aliases
        for p in self.providers.values():
            if not p.enabled:
                continue
            pid = p.provider_id
            for m in p.models.aliased():
                if m.get("enabled", True) is False:
                    continue
                for alias in m["aliases"]:
                    aliases.setdefault(alias, []).append((pid, m["model_id"]))

    @property
    def aliases(self) -> Mapping[str, list[tuple[str, str]]]:
        """Each enabled model's alias -> the ``(provider_id, model_id)`` pairs it names."""
        return MappingProxyType(self._aliases)

    @property
    def content_hash(self) -> str | None:
        """``sha256:...`` of the configuration this was built from (state hash for a database)."""
        value = self._content_hash
        if callable(value):
            value = value()
            object.__setattr__(self, "_content_hash", value)
        return value

    def _bare_owners(self, model_id: str) -> list[str]:
        """Enabled providers with an enabled model ``model_id``, in provider order (memoised)."""
        owners = self._bare.get(model_id)
        if owners is None:
            owners = []
            for p in self.providers.values():
                if p.enabled and p.models.enabled(model_id):
                    owners.append(p.provider_id)
            if owners:  # unknown ids are not remembered (they come from requests)
                self._bare[model_id] = owners
        return owners

    def _bare_names(self) -> Iterable[str]:
        """Every model id :meth:`_bare_owners` can resolve (for did-you-mean hints)."""
        return dict.fromkeys(
            mid
            for p in self.providers.values()
            if p.enabled
            for mid in p.models
            if p.models.enabled(mid)
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GatewayConfig):
            return NotImplemented
        return (
            self.providers == other.providers
            and self.routes == other.routes
            and self.default_route == other.default_route
            and self.environment == other.environment
            and self.consumers == other.consumers
        )

    __hash__ = None  # type: ignore[assignment]

    def iter_models(self) -> Iterator[tuple[ProviderConfig, ModelConfig]]:
        """Every (provider, model) pair, in provider then model order."""
        for p in self.providers.values():
            for m in p.models.values():
                yield p, m

    def resolve(self, identifier: str | None, provider_id: str | None = None) -> Resolution:
        """Resolve a model identifier (and optional pinned provider) to ordered target groups."""
        cache_key = (identifier, provider_id)
        hit = self._cache.get(cache_key)
        if hit is not None:
            return hit
        res = self._resolve(identifier, provider_id)
        if len(self._cache) < 100_000:
            self._cache[cache_key] = res
        return res

    # -- resolution -------------------------------------------------------------------------------

    def _resolve(self, identifier: str | None, provider_id: str | None) -> Resolution:
        if not identifier:
            if self.default_route is None:
                raise NoRouteError(
                    "the request names no model and there is no default route",
                    hint=self._name_a_model(),
                )
            identifier = self.default_route
        if provider_id is not None:
            return self._resolve_pinned(identifier, provider_id)
        if identifier in self.routes:
            return self._route_resolution(identifier, None)
        if "/" in identifier:
            pid, mid = identifier.split("/", 1)
            p = self.providers.get(pid)
            if p is not None and mid in p.models:
                return Resolution(identifier, None, (TargetGroup((self._target(pid, mid),)),))
        owners = self._aliases.get(identifier)
        if owners:
            if len(owners) > 1:
                raise AmbiguousModelError(identifier, [f"{p}/{m}" for p, m in owners])
            return Resolution(identifier, None, (TargetGroup((self._target(*owners[0]),)),))
        pids = self._bare_owners(identifier)
        if pids:
            if len(pids) > 1:
                raise AmbiguousModelError(identifier, [f"{p}/{identifier}" for p in pids])
            return Resolution(
                identifier, None, (TargetGroup((self._target(pids[0], identifier),)),)
            )
        why, hint = self._why_not(identifier), self.suggest(identifier)
        raise UnknownModelError(identifier, why, hint=hint)

    def _resolve_pinned(self, identifier: str, provider_id: str) -> Resolution:
        p = self.providers.get(provider_id)
        if p is None:
            raise NoRouteError(f"unknown provider '{provider_id}'")
        mid = identifier.removeprefix(provider_id + "/")
        if mid in p.models:
            return Resolution(identifier, None, (TargetGroup((self._target(provider_id, mid),)),))
        for owner_pid, owner_mid in self._aliases.get(identifier, ()):
            if owner_pid == provider_id:
                target = self._target(owner_pid, owner_mid)
                return Resolution(identifier, None, (TargetGroup((target,)),))
        if identifier in self.routes:
            res = self._route_resolution(identifier, provider_id)
            return res
        raise NoRouteError(f"provider '{provider_id}' has no model or alias '{identifier}'")

    def _target(self, pid: str, mid: str) -> Target:
        p = self.providers[pid]
        m = p.models[mid]
        if not p.enabled:
            raise NoRouteError(f"provider '{pid}' is disabled")
        if not m.enabled:
            raise NoRouteError(f"model '{pid}/{mid}' is disabled")
        return Target(p, m)

    def _route_resolution(self, name: str, only_provider: str | None) -> Resolution:
        groups: list[TargetGroup] = []
        seen_targets: set[tuple[str, str]] = set()
        seen_routes: set[str] = set()
        queue = [name]
        while queue:
            rname = queue.pop(0)
            if rname in seen_routes or rname not in self.routes:
                continue
            seen_routes.add(rname)
            route = self.routes[rname]
            targets: list[Target] = []
            weights: list[int] = []
            for pid, mid, weight in route.targets:
                if only_provider is not None and pid != only_provider:
                    continue
                p = self.providers.get(pid)
                m = p.models.get(mid) if p is not None else None
                if p is None or m is None or not p.enabled or not m.enabled:
                    continue
                if (pid, mid) in seen_targets:
                    continue
                seen_targets.add((pid, mid))
                targets.append(Target(p, m))
                weights.append(weight)
            if targets:
                weighted = route.strategy == "weighted" and len(targets) > 1
                groups.append(TargetGroup(tuple(targets), tuple(weights) if weighted else None))
            queue.extend(route.fallbacks)
        if not groups:
            pinned = f" on provider '{only_provider}'" if only_provider else ""
            raise NoRouteError(f"route '{name}' has no enabled target{pinned}")
        return Resolution(name, name, tuple(groups))

    def _misses(self) -> tuple[NameIndex, dict[str, ProviderConfig]]:
        """What explains a miss (built once, on the first one): the names index, and every
        alias of any model, enabled or not, with its provider."""
        hints = self._hints
        if hints is None:
            index = NameIndex([*self.routes, *self._aliases, *self._bare_names()])
            every_alias: dict[str, ProviderConfig] = {}
            for p in self.providers.values():
                for m in p.models.aliased():
                    for alias in m["aliases"]:
                        every_alias.setdefault(alias, p)
            hints = (index, every_alias)
            object.__setattr__(self, "_hints", hints)
        return hints

    def suggest(self, identifier: str, keep: Callable[[str], bool] | None = None) -> str | None:
        """A miss's hint: close names, else some routes (only those ``keep`` accepts, if given)."""
        return miss_hint(self._misses()[0], self.routes, identifier, keep)

    def _name_a_model(self) -> str:
        """How to name a model, with a few of the names this configuration answers to."""
        names = [*sorted(self.routes)[:3]]
        names += [f"{p.provider_id}/{m}" for p in self.providers.values() if p.enabled
                  for m in p.models if p.models.enabled(m)][: 5 - len(names)]  # fmt: skip
        known = f" (for example {', '.join(repr(n) for n in names)})" if names else ""
        return (
            f"name a model: --model on the command line, LLMConfig(model_identifier=...) in "
            f"code{known}; or set default_route in the Gateway document"
        )

    def _why_not(self, identifier: str) -> str:  # a look-up per provider, never a walk of models
        owner = next((p for p in self.providers.values() if identifier in p.models), None)
        if owner is None:
            owner = self._misses()[1].get(identifier)
        if owner is not None:
            state = "provider is disabled" if not owner.enabled else "model is disabled"
            return f"model '{identifier}' is not available ({owner.provider_id}: {state})"
        return f"no route, alias or model named '{identifier}'"
