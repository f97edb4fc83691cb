"""The models of one provider: :class:`ModelConfig` and the lazily built :class:`ModelTable`."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["ModelConfig", "ModelTable", "model_config"]


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """One model of one provider."""

    model_id: str
    display_name: str
    model_type: str
    context_window: int | None
    max_tokens: int | None
    enabled: bool
    capabilities: tuple[str, ...]
    parameters: Mapping[str, Any]
    pricing: Mapping[str, Any] | None
    aliases: tuple[str, ...]


def model_config(m: Mapping[str, Any]) -> ModelConfig:
    """A :class:`ModelConfig` from one canonical model dict."""
    pricing = m.get("pricing")
    return ModelConfig(
        m["model_id"],
        m.get("display_name") or m["model_id"],
        m.get("model_type", "chat"),
        m.get("context_window"),
        m.get("max_tokens"),
        m.get("enabled", True),
        tuple(m.get("capabilities", ())),
        MappingProxyType(m.get("parameters") or {}),
        MappingProxyType(pricing) if pricing is not None else None,
        tuple(m.get("aliases", ())),
    )


class ModelTable(Mapping[str, ModelConfig]):
    """Read-only ``model_id -> ModelConfig``; each ModelConfig is built on first use.

    Loading 24,000 models stays cheap: only the models requests actually reach are built.
    Entries are canonical model dicts or, straight from the database, raw rows that
    ``materialize`` turns into canonical dicts on first use; for those, ``disabled`` (ids of
    disabled models) and ``aliased`` (ids that may declare aliases, in table order) are known
    up front.
    """

    __slots__ = ("_aliased", "_built", "_disabled", "_materialize", "_raw")

    def __init__(
        self,
        raw: dict[str, Any],
        materialize: Callable[[Any], dict[str, Any]] | None = None,
        *,
        disabled: Collection[str] = frozenset(),
        aliased: Iterable[str] = (),
    ) -> None:
        self._raw = raw
        self._built: dict[str, ModelConfig] = {}
        self._materialize = materialize
        self._disabled = disabled
        self._aliased = tuple(aliased)

    def __getitem__(self, model_id: str) -> ModelConfig:
        built = self._built.get(model_id)
        if built is None:
            entry = self.raw(model_id)
            if entry is None:
                raise KeyError(model_id)
            built = self._built[model_id] = model_config(entry)
        return built

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return f"ModelTable({len(self._raw)} models)"

    def raw_items(self) -> Iterable[tuple[str, Mapping[str, Any]]]:
        """``(model_id, canonical model dict)`` pairs, without building ModelConfigs."""
        materialize = self._materialize
        if materialize is not None:
            self._raw = {
                mid: e if isinstance(e, dict) else materialize(e) for mid, e in self._raw.items()
            }
            self._materialize = None
        return self._raw.items()

    def raw(self, model_id: str) -> Mapping[str, Any] | None:
        """The canonical dict of ``model_id`` (None when absent), without building a ModelConfig."""
        entry = self._raw.get(model_id)
        if entry is None or isinstance(entry, dict) or self._materialize is None:
            return entry
        entry = self._raw[model_id] = self._materialize(entry)
        return entry

    def enabled(self, model_id: str) -> bool:
        """True when ``model_id`` is in the table and not disabled."""
        entry = self._raw.get(model_id)
        if entry is None:
            return False
        if isinstance(entry, dict):
            return entry.get("enabled", True) is not False
        return model_id not in self._disabled

    def aliased(self) -> list[Mapping[str, Any]]:
        """The canonical dicts of the models that declare aliases, in table order."""
        if self._materialize is None:
            return [m for m in self._raw.values() if m.get("aliases")]
        found = (self.raw(mid) for mid in self._aliased)
        return [m for m in found if m is not None and m.get("aliases")]
