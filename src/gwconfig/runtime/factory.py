"""ProviderFactory: provider_type -> provider class (built-ins plus an entry-point group)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from importlib.metadata import entry_points

from gwconfig.runtime.config.gateway import ProviderConfig
from gwconfig.runtime.errors import ConfigLoadError
from gwconfig.runtime.providers.base import BaseProvider

log = logging.getLogger(__name__)

#: Plugins register provider classes here, e.g. in pyproject.toml:
#: ``[project.entry-points."gwconfig.providers"] bedrock = "my_pkg.bedrock:BedrockProvider"``
ENTRY_POINT_GROUP = "gwconfig.providers"

BUILTINS: dict[str, str] = {
    "openai": "gwconfig.runtime.providers.openai:OpenAIProvider",
    "azure_openai": "gwconfig.runtime.providers.openai:AzureOpenAIProvider",
    "anthropic": "gwconfig.runtime.providers.anthropic:AnthropicProvider",
    "mock": "gwconfig.runtime.providers.mock:MockProvider",
}


def _import(target: str) -> type[BaseProvider]:
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, BaseProvider)):
        raise ConfigLoadError(f"{target} is not a gwconfig.runtime BaseProvider subclass")
    return cls


class ProviderFactory:
    """Creates provider instances by ``provider_type``; plugins come from an entry-point group."""

    def __init__(
        self,
        providers: Mapping[str, type[BaseProvider]] | None = None,
        *,
        use_entry_points: bool = True,
    ) -> None:
        self._classes: dict[str, type[BaseProvider]] = dict(providers or {})
        self._use_entry_points = use_entry_points
        self._plugins: dict[str, str] | None = None

    def register(self, provider_type: str, cls: type[BaseProvider]) -> None:
        """Register (or replace) the class used for ``provider_type``."""
        self._classes[provider_type] = cls

    def _plugin_targets(self) -> dict[str, str]:
        if self._plugins is None:
            self._plugins = {}
            if self._use_entry_points:
                for ep in entry_points(group=ENTRY_POINT_GROUP):
                    self._plugins[ep.name] = ep.value
        return self._plugins

    def provider_types(self) -> list[str]:
        """Every provider type this factory can create."""
        return sorted({*BUILTINS, *self._plugin_targets(), *self._classes})

    def provider_class(self, provider_type: str) -> type[BaseProvider]:
        """The class for ``provider_type`` (registered, then built-in, then plugin)."""
        cls = self._classes.get(provider_type)
        if cls is not None:
            return cls
        target = BUILTINS.get(provider_type) or self._plugin_targets().get(provider_type)
        if target is None:
            raise ConfigLoadError(
                f"no provider implementation for provider_type '{provider_type}'",
                hint=f"built-in types: {', '.join(sorted(BUILTINS))}; others need a plugin "
                f"registered in the '{ENTRY_POINT_GROUP}' entry-point group",
            )
        try:
            cls = _import(target)
        except (ImportError, AttributeError) as exc:
            raise ConfigLoadError(
                f"cannot load provider '{provider_type}' from {target}: {exc}"
            ) from exc
        self._classes[provider_type] = cls
        return cls

    def create(self, config: ProviderConfig) -> BaseProvider:
        """A new provider instance for ``config``."""
        return self.provider_class(config.provider_type)(config)
