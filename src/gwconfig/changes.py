"""The change types a diff produces and a plan lists (imports only the entity registry).

Frozen pydantic models whose declared fields *are* the published JSON form (see
:mod:`gwconfig.plan`): field order is key order, a field excluded from a variant is a key that
variant never writes, and loading a saved plan is ``model_validate``. ``before``/``after`` bodies
are canonical entity dicts passed through without validation (a plan lists them by the 10,000;
they were validated when compiled or read), and are written with secret values masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, SkipValidation, field_serializer

# the entity registry is a leaf too: labels, secret fields and the one masking function
from gwconfig.entities import EntityType, entity_label, is_secret_field, mask_entity

#: A canonical entity body; never validated again (see the module docstring).
Body = SkipValidation[Mapping[str, Any] | None]

_FROZEN = ConfigDict(frozen=True)


class FieldChange(BaseModel):
    """One field of an updated entity: ``op`` is ``set`` (old -> new), ``add`` or ``remove``.

    Diff makes one of the four variants below; each excludes the keys its JSON never has.
    """

    model_config = _FROZEN

    path: str
    op: Literal["set", "add", "remove"] = "set"
    old: Any = None
    new: Any = None
    sensitive: bool = False
    unknown: str | None = None


class SetField(FieldChange):
    """``path: old -> new``."""

    op: Literal["set"] = "set"
    sensitive: Literal[False] = Field(False, exclude=True)
    unknown: None = Field(None, exclude=True)


class AddItem(FieldChange):
    """``path: + new`` (an item added to a list of scalars)."""

    op: Literal["add"] = "add"
    old: None = Field(None, exclude=True)
    sensitive: Literal[False] = Field(False, exclude=True)
    unknown: None = Field(None, exclude=True)


class RemoveItem(FieldChange):
    """``path: - old`` (an item removed from a list of scalars)."""

    op: Literal["remove"] = "remove"
    new: None = Field(None, exclude=True)
    sensitive: Literal[False] = Field(False, exclude=True)
    unknown: None = Field(None, exclude=True)


class SensitiveField(FieldChange):
    """A secret value changed: never carries values, only why it is unknown (if it is)."""

    op: Literal["set"] = "set"
    old: None = Field(None, exclude=True)
    new: None = Field(None, exclude=True)
    sensitive: Literal[True] = True
    unknown: str | None = Field(None, exclude_if=lambda v: not v)


#: Any concrete field change. A plain union: an instance matches its own class at once (no call
#: per field, diff makes them by the 10,000); a saved dict matches the one variant whose literal
#: ``op``/``sensitive`` it has.
AnyField = SetField | AddItem | RemoveItem | SensitiveField


class Change(BaseModel):
    """One change to one entity; ``before``/``after`` are canonical entity dicts (no plaintext)."""

    model_config = _FROZEN

    action: Literal["create", "update", "delete"]
    entity: EntityType
    key: str
    provider_id: str | None = None
    fields: tuple[AnyField, ...] = ()
    drift: bool = False
    blocked: str | None = None
    before: Body = None
    after: Body = None

    symbol: ClassVar[str] = "?"
    destructive: ClassVar[bool] = False

    @field_serializer("before", "after")
    def _masked(self, body: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        return mask_entity(self.entity, body)

    @property
    def effective(self) -> bool:
        """True when apply will execute this change (blocked deletes are kept)."""
        return self.blocked is None

    @property
    def label(self) -> str:
        """The key as people read it (``local-chat`` for ``route:local-chat``)."""
        return entity_label(self.entity, self.key)

    @property
    def unknown_secrets(self) -> tuple[str, ...]:
        """Reasons of secret values that could not be resolved at plan time."""
        found = [f.unknown for f in self.fields if f.unknown]
        value = (
            (self.after or {}).get("value") if is_secret_field(self.entity, self.after) else None
        )
        if not found and isinstance(value, Mapping) and "unknown" in value:
            found.append(str(value["unknown"]))
        return tuple(found)


class Create(Change):
    """Create an entity that exists only in the manifests."""

    action: Literal["create"] = "create"
    symbol: ClassVar[str] = "+"


class Update(Change):
    """Update fields of an entity present on both sides."""

    action: Literal["update"] = "update"
    symbol: ClassVar[str] = "~"


class Delete(Change):
    """Delete an entity missing from the manifests (only with ``--prune``)."""

    action: Literal["delete"] = "delete"
    symbol: ClassVar[str] = "-"
    destructive: ClassVar[bool] = True


#: Any concrete change; a saved plan's ``action`` key says which.
AnyChange = Annotated[Create | Update | Delete, Field(discriminator="action")]
ACTIONS: dict[str, type[Change]] = {"create": Create, "update": Update, "delete": Delete}


class Diff(NamedTuple):
    """What :func:`gwconfig.diff.diff` finds: the ordered changes and warnings about them."""

    changes: tuple[Change, ...]
    warnings: tuple[str, ...]
