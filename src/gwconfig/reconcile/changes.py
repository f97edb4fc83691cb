"""The change types a diff produces and a plan lists (imports only the entity registry).

Frozen slotted dataclasses (a plan lists them by the 10,000: no per-object validation). Their
declared fields *are* the published JSON form (see :mod:`gwconfig.reconcile.plan`), read once per
class by
the one generic pair :func:`to_json` / :func:`from_json`:

* field order is key order;
* a field declared ``init=False`` is fixed by the variant (``action``, ``op``, ``sensitive``):
  it is how a saved dict finds its class again;
* ``metadata=NEVER`` marks a key the variant never writes, ``metadata=IF_SET`` one written only
  when set, ``metadata=MASKED`` an entity body written with its secret values masked;
* a tuple of field changes is written as the list of their JSON forms.

``before``/``after`` bodies are canonical entity dicts passed through as they are (they were
validated when compiled or read; a saved plan's are only checked to be objects), and are written
with secret values masked.
"""

from __future__ import annotations

import dataclasses
import operator
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple

# the entity registry is a leaf too: labels, secret fields and the one masking function
from gwconfig.entities import (
    KINDS,
    EntityKind,
    EntityType,
    entity_label,
    is_secret_field,
    mask_entity,
)

#: Field metadata: the variant never writes this key.
NEVER: Mapping[str, str] = types.MappingProxyType({"json": "never"})
#: Field metadata: the key is written only when its value is truthy.
IF_SET: Mapping[str, str] = types.MappingProxyType({"json": "if_set"})
#: Field metadata: an entity body, written with its secret values masked.
MASKED: Mapping[str, str] = types.MappingProxyType({"json": "masked"})

#: A canonical entity body; not validated again (see the module docstring).
Body = Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of an updated entity: ``op`` is ``set`` (old -> new), ``add`` or ``remove``.

    Diff makes one of the four variants below; each fixes ``op``/``sensitive`` and leaves out the
    keys its JSON never has.
    """

    path: str
    op: Literal["set", "add", "remove"] = "set"
    old: Any = None
    new: Any = None
    sensitive: bool = False
    unknown: str | None = None


@dataclass(frozen=True, slots=True)
class SetField(FieldChange):
    """``path: old -> new``."""

    op: Literal["set"] = field(default="set", init=False)
    sensitive: Literal[False] = field(default=False, init=False, metadata=NEVER)
    unknown: None = field(default=None, init=False, metadata=NEVER)


@dataclass(frozen=True, slots=True)
class AddItem(FieldChange):
    """``path: + new`` (an item added to a list of scalars)."""

    op: Literal["add"] = field(default="add", init=False)
    old: None = field(default=None, init=False, metadata=NEVER)
    sensitive: Literal[False] = field(default=False, init=False, metadata=NEVER)
    unknown: None = field(default=None, init=False, metadata=NEVER)


@dataclass(frozen=True, slots=True)
class RemoveItem(FieldChange):
    """``path: - old`` (an item removed from a list of scalars)."""

    op: Literal["remove"] = field(default="remove", init=False)
    new: None = field(default=None, init=False, metadata=NEVER)
    sensitive: Literal[False] = field(default=False, init=False, metadata=NEVER)
    unknown: None = field(default=None, init=False, metadata=NEVER)


@dataclass(frozen=True, slots=True)
class SensitiveField(FieldChange):
    """A secret value changed: never carries values, only why it is unknown (if it is)."""

    op: Literal["set"] = field(default="set", init=False)
    old: None = field(default=None, init=False, metadata=NEVER)
    new: None = field(default=None, init=False, metadata=NEVER)
    sensitive: Literal[True] = field(default=True, init=False)
    unknown: str | None = field(default=None, metadata=IF_SET)


#: Any concrete field change; a saved dict is the one variant whose ``op``/``sensitive`` it has.
AnyField = SetField | AddItem | RemoveItem | SensitiveField


@dataclass(frozen=True, slots=True)
class Change:
    """One change to one entity; ``before``/``after`` are canonical entity dicts (no plaintext)."""

    action: Literal["create", "update", "delete"] = field(init=False)
    entity: EntityType
    key: str
    provider_id: str | None = None
    fields: tuple[AnyField, ...] = ()
    drift: bool = False
    blocked: str | None = None
    before: Body = field(default=None, metadata=MASKED)
    after: Body = field(default=None, metadata=MASKED)

    symbol: ClassVar[str] = "?"
    destructive: ClassVar[bool] = False

    @property
    def effective(self) -> bool:
        """True when apply will execute this change (blocked deletes are kept)."""
        return self.blocked is None

    @property
    def kind(self) -> EntityKind:
        """The kind of the entity changed (what behaviour per kind dispatches on)."""
        return KINDS[self.entity]

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


@dataclass(frozen=True, slots=True)
class Create(Change):
    """Create an entity that exists only in the manifests."""

    action: Literal["create"] = field(default="create", init=False)
    symbol: ClassVar[str] = "+"


@dataclass(frozen=True, slots=True)
class Update(Change):
    """Update fields of an entity present on both sides."""

    action: Literal["update"] = field(default="update", init=False)
    symbol: ClassVar[str] = "~"


@dataclass(frozen=True, slots=True)
class Delete(Change):
    """Delete an entity missing from the manifests (only with ``--prune``)."""

    action: Literal["delete"] = field(default="delete", init=False)
    symbol: ClassVar[str] = "-"
    destructive: ClassVar[bool] = True


#: Any concrete change; a saved dict's ``action`` key says which.
AnyChange = Create | Update | Delete
ACTIONS: dict[str, type[Change]] = {"create": Create, "update": Update, "delete": Delete}


class Diff(NamedTuple):
    """What :func:`gwconfig.reconcile.diff.diff` finds: the ordered changes and warnings about
    them."""

    changes: tuple[Change, ...]
    warnings: tuple[str, ...]


# -- the JSON form, read from the declarations once per class ------------------------------------


class ChangeFormatError(ValueError):
    """A saved change that is not one of the change types; ``where`` is its dotted location."""

    def __init__(self, where: tuple[str | int, ...], message: str) -> None:
        super().__init__(f"{'.'.join(map(str, where))}: {message}")
        self.where = where
        self.message = message

    def inside(self, *where: str | int) -> ChangeFormatError:
        """The same error, located inside ``where``."""
        return ChangeFormatError((*where, *self.where), self.message)


#: Checks one saved value against a declared type: returns it (a tuple for a list) or raises
#: :class:`ChangeFormatError` located relative to the value.
_Check = Callable[[Any], Any]


class _Shape(NamedTuple):
    """One variant's JSON form: what it writes and how a saved dict becomes one."""

    keys: tuple[str, ...]  # the keys written, in order
    values: Callable[[Any], tuple[Any, ...]]  # their values (one C-level call)
    nested: tuple[str, ...]  # of ``keys``: tuples of field changes
    masked: tuple[str, ...]  # of ``keys``: entity bodies, masked
    if_set: tuple[str, ...]  # of ``keys``: left out when falsy
    fixed: tuple[tuple[str, Any], ...]  # the values that identify the variant
    init: tuple[tuple[str, _Check, Any], ...]  # constructor arguments: name, check, default


_SHAPES: dict[type, _Shape] = {}


def _kind(f: dataclasses.Field[Any]) -> str | None:
    # dataclasses copy the metadata into a new proxy: compare its content, not its identity
    return f.metadata.get("json")


def _shape(cls: type) -> _Shape:
    """The JSON form of a change class, from ``dataclasses.fields`` (computed once)."""
    shape = _SHAPES.get(cls)
    if shape is None:
        hints = typing.get_type_hints(cls)
        declared = dataclasses.fields(cls)
        keys = tuple(f.name for f in declared if _kind(f) != "never")
        shape = _SHAPES[cls] = _Shape(
            keys=keys,
            values=operator.attrgetter(*keys),
            nested=tuple(f.name for f in declared if typing.get_origin(hints[f.name]) is tuple),
            masked=tuple(f.name for f in declared if _kind(f) == "masked"),
            if_set=tuple(f.name for f in declared if _kind(f) == "if_set"),
            fixed=tuple((f.name, f.default) for f in declared if not f.init),
            # a field without a default has MISSING: required
            init=tuple((f.name, _check_of(hints[f.name]), f.default) for f in declared if f.init),
        )
    return shape


def _fail(message: str, *where: str | int) -> typing.NoReturn:
    raise ChangeFormatError(where, message)


def _check_of(tp: Any) -> _Check:
    """The check of saved values of the annotation ``tp`` (JSON values: no coercion)."""
    if tp is Any:
        return lambda v: v
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        allowed = frozenset(args)
        expected = ", ".join(sorted(map(repr, allowed)))

        def literal(v: Any) -> Any:
            if isinstance(v, str | bool | None) and v in allowed:
                return v
            return _fail(f"expected one of {expected}, got {v!r}")

        return literal
    if origin in (typing.Union, types.UnionType):
        if all(dataclasses.is_dataclass(a) for a in args):
            return _loader(args)
        plain = tuple(typing.get_origin(a) or a for a in args)
        names = " or ".join("null" if a is type(None) else a.__name__ for a in plain)
        return _instance_check(plain, names)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = _check_of(args[0])

        def items(v: Any) -> tuple[Any, ...]:
            if not isinstance(v, list | tuple):
                _fail(f"expected a list, got {type(v).__name__}")
            try:
                return tuple(map(item, v))
            except ChangeFormatError as exc:  # find which item (only on the failing path)
                for i, x in enumerate(v):
                    try:
                        item(x)
                    except ChangeFormatError:
                        raise exc.inside(i) from None
                raise  # pragma: no cover - a check that failed once passes again

        return items
    return _instance_check((origin or tp,), (origin or tp).__name__)


def _instance_check(classes: tuple[type, ...], name: str) -> _Check:
    def check(v: Any) -> Any:
        if isinstance(v, classes):
            return v
        return _fail(f"expected {name}, got {type(v).__name__}")

    return check


def _loader(classes: tuple[type, ...]) -> _Check:
    """Build the one variant of ``classes`` a saved dict is (by its fixed values) from it.

    The first fixed field (``action``, ``op``) picks the candidates; the other fixed fields of a
    candidate (``sensitive``, keys it never has) must have their fixed value or be absent.
    """
    tag = _shape(classes[0]).fixed[0][0]
    by_tag: dict[Any, list[tuple[type, _Shape]]] = {}
    for cls in classes:
        shape = _shape(cls)
        by_tag.setdefault(shape.fixed[0][1], []).append((cls, shape))

    def load(data: Any) -> Any:
        if not isinstance(data, Mapping):
            _fail(f"expected an object, got {type(data).__name__}")
        value = data.get(tag)
        for cls, shape in by_tag.get(value, ()) if isinstance(value, str) else ():
            for name, fixed in shape.fixed:
                if data.get(name, fixed) != fixed:
                    break
            else:
                kwargs = {}
                for name, check, default in shape.init:
                    if name in data:
                        try:
                            kwargs[name] = check(data[name])
                        except ChangeFormatError as exc:
                            raise exc.inside(name) from None
                    elif default is dataclasses.MISSING:
                        _fail("field required", name)
                return cls(**kwargs)
        return _fail(f"unknown {tag} {value!r} (or keys that do not go with it)", tag)

    return load


def to_json(value: Change | FieldChange) -> dict[str, Any]:
    """The JSON form of a change or field change: its declared keys, secrets masked.

    ``fields`` become their JSON forms; ``before``/``after`` are masked with the registry's
    :func:`~gwconfig.entities.mask_entity` (a body without secrets is passed through as is).
    """
    shape = _SHAPES.get(type(value)) or _shape(type(value))
    out = dict(zip(shape.keys, shape.values(value), strict=True))
    for key in shape.nested:
        out[key] = [to_json(f) for f in out[key]]
    for key in shape.masked:
        out[key] = mask_entity(out["entity"], out[key])
    for key in shape.if_set:
        if not out[key]:
            del out[key]
    return out


_CHANGE = _check_of(AnyChange)


def from_json(data: Any) -> Change:
    """Inverse of :func:`to_json` for a change (masked values stay masked).

    Raises :class:`ChangeFormatError` naming where (``fields.0.op``) a saved dict is no change.
    """
    change: Change = _CHANGE(data)
    return change
