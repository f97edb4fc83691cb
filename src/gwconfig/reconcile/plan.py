"""The Plan value: ordered changes plus what is needed to apply them later; JSON and renderers.

JSON schema (``format_version`` 1, stable; new keys may be added, none removed)::

    {
      "format_version": 1,
      "base_state_hash": "sha256:..." | null,   # state the plan was computed from
      "desired_hash": "sha256:..." | null,      # content hash of the compiled manifests
      "drift_revision": int | null,             # last revision, when the DB drifted from it
      "options": {"prune": bool, "targets": [str], "tags": [str], "env": str | null},
      "summary": {"add": int, "change": int, "delete": int, "kept": int, "drift": int},
      "warnings": [str],
      "changes": [{"action": "create"|"update"|"delete", "entity": str, "key": str,
                   "provider_id": str|null, "drift": bool, "blocked": str|null,
                   "fields": [{"path", "op": "set"|"add"|"remove", "old", "new",
                               "sensitive": true, "unknown": str}],
                   "before": {...}|null, "after": {...}|null}],
      # saved plans (--out) only: how to apply it later; secrets as references, never values
      "desired": {canonical configuration} , "fingerprints": {"secret scope key": "hmac-sha256:..."}
    }
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SkipValidation,
    ValidationError,
    field_validator,
    model_validator,
)

from gwconfig.errors import PlanError
from gwconfig.reconcile.changes import (
    Change,
    ChangeFormatError,
    Create,
    Delete,
    Update,
    from_json,
    to_json,
)

PLAN_FORMAT_VERSION = 1
MARKDOWN_LIMIT = 65_000
#: Keys only a saved plan (``plan --out``) has: what a later ``apply --plan`` needs.
SAVED_ONLY = frozenset({"desired", "fingerprints"})


class PlanOptions(BaseModel):
    """What to plan: environment, pruning and provider selection (stored in plans as is)."""

    model_config = ConfigDict(frozen=True)

    env: str | None = None
    prune: bool = False
    targets: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


def summarise(changes: tuple[Change, ...]) -> dict[str, int]:
    """Counts: add, change, delete (effective), kept (blocked deletes), drift."""
    out = {"add": 0, "change": 0, "delete": 0, "kept": 0, "drift": 0}
    for c in changes:
        if c.blocked:
            out["kept"] += 1
        elif isinstance(c, Create):
            out["add"] += 1
        elif isinstance(c, Update):
            out["change"] += 1
        elif isinstance(c, Delete):
            out["delete"] += 1
        if c.drift:
            out["drift"] += 1
    return out


class Plan(BaseModel):
    """An ordered list of changes and the context it was computed in.

    The declared fields, in order, are the JSON form documented above; ``summary`` is always
    counted from ``changes`` (a saved plan's counts are not trusted). ``changes`` hold the
    dataclasses of :mod:`gwconfig.reconcile.changes` as they are (a plan lists them by the 10,000);
    saved
    dicts are turned into them, and back, by the one generic pair ``from_json``/``to_json``.
    ``desired`` is the canonical configuration, checked when compiled, and not walked again.
    """

    model_config = ConfigDict(frozen=True)

    format_version: Literal[1] = 1
    base_state_hash: str | None = None
    desired_hash: str | None = None
    drift_revision: int | None = None
    options: PlanOptions = PlanOptions()
    summary: dict[str, int] = Field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    changes: SkipValidation[tuple[Change, ...]] = ()
    desired: SkipValidation[Mapping[str, Any] | None] = Field(None, repr=False)
    fingerprints: Mapping[str, str] = Field(default_factory=dict)

    @field_validator("changes", mode="before")
    @classmethod
    def _changes(cls, value: Any) -> tuple[Change, ...]:
        if isinstance(value, tuple) and all(isinstance(c, Change) for c in value):
            return value  # made by diff: already typed
        if not isinstance(value, list | tuple):
            raise PlanError(f"the plan file is damaged (changes: expected a list, got {value!r})")
        out = []
        for i, c in enumerate(value):
            try:
                out.append(c if isinstance(c, Change) else from_json(c))
            except ChangeFormatError as exc:
                raise PlanError(f"the plan file is damaged ({exc.inside('changes', i)})") from None
        return tuple(out)

    @field_validator("desired", mode="before")
    @classmethod
    def _desired(cls, value: Any) -> Mapping[str, Any] | None:
        if value is not None and not isinstance(value, Mapping):
            raise PlanError("the plan file is damaged (desired: expected an object)")
        return value

    @model_validator(mode="after")
    def _count(self) -> Plan:
        # a derived field of a frozen value: set once, here, whichever way the plan was made
        object.__setattr__(self, "summary", summarise(self.changes))
        return self

    @property
    def effective_changes(self) -> tuple[Change, ...]:
        """The changes apply will execute (blocked deletes left out)."""
        return tuple(c for c in self.changes if c.effective)

    @property
    def has_changes(self) -> bool:
        """True when the database differs from the manifests (kept deletes included)."""
        return bool(self.changes)

    @property
    def unknown_secrets(self) -> tuple[str, ...]:
        """Reasons for every secret that could not be resolved (apply refuses these)."""
        seen: dict[str, None] = {}
        for c in self.changes:
            if c.blocked is not None or not c.kind.secret_fields:
                continue  # only secrets can be unknown
            for reason in c.unknown_secrets:
                seen.setdefault(f"{c.key}: {reason}", None)
        return tuple(seen)

    def to_json_dict(self, *, saved: bool = False) -> dict[str, Any]:
        """The documented JSON form; ``saved`` adds what a later ``apply --plan`` needs.

        Keys in field order; the changes by :func:`gwconfig.reconcile.changes.to_json`, the (large)
        canonical ``desired`` as it is, everything else as pydantic dumps it.
        """
        rest = self.model_dump(exclude={"changes", "desired"})
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            if name in SAVED_ONLY and not saved:
                continue
            if name == "changes":
                out[name] = [to_json(c) for c in self.changes]
            elif name == "desired":
                out[name] = self.desired
            else:
                out[name] = rest[name]
        return out

    def to_json_bytes(self, *, saved: bool = False) -> bytes:
        """Indented JSON with a trailing newline (the bytes ``orjson`` writes for the dict)."""
        return orjson.dumps(self.to_json_dict(saved=saved), option=orjson.OPT_INDENT_2) + b"\n"

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> Plan:
        """Read a plan written by :meth:`to_json_dict` (raises PlanError on a foreign file)."""
        if not isinstance(data, Mapping) or data.get("format_version") != PLAN_FORMAT_VERSION:
            raise PlanError(
                "not a gwconfig plan file (format_version 1 expected)",
                hint="make one with 'gwconfig plan --out PLAN.json'",
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise PlanError(f"the plan file is damaged ({where}: {first['msg']})") from None

    @classmethod
    def from_json_bytes(cls, raw: bytes) -> Plan:
        """Parse a plan file's bytes."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise PlanError(f"the plan file is not valid JSON ({exc})") from None
        return cls.from_json_dict(data)

    def same_changes(self, other: Plan) -> bool:
        """True when both plans list the same changes (compared through their JSON form)."""
        return len(self.changes) == len(other.changes) and all(
            to_json(a) == to_json(b) for a, b in zip(self.changes, other.changes, strict=True)
        )


def summary_line(plan: Plan) -> str:
    """``Plan: A to add, C to change, D to delete.`` (+ kept deletes)."""
    s = plan.summary
    line = f"Plan: {s['add']} to add, {s['change']} to change, {s['delete']} to delete."
    if s["kept"]:
        line += f" {s['kept']} kept (deletion needs --prune or is protected)."
    return line


def describe_value(value: Any) -> str:
    """Compact JSON of a value for human output."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def field_text(f: Any) -> str:
    """One field change as text: ``path: old -> new``, ``path: + item`` or sensitive markers."""
    if f.sensitive:
        if f.unknown:
            return f"{f.path}: (unknown until apply: {f.unknown})"
        return f"{f.path}: (sensitive value changed)"
    if f.op == "add":
        return f"{f.path}: + {describe_value(f.new)}"
    if f.op == "remove":
        return f"{f.path}: - {describe_value(f.old)}"
    return f"{f.path}: {describe_value(f.old)} -> {describe_value(f.new)}"


def change_title(c: Change) -> str:
    """Headline of a change, e.g. ``+ model openai/gpt-4o`` with drift/blocked markers."""
    verb = "would delete" if c.blocked else ""
    title = f"{c.symbol} {c.entity} {c.label}"
    if c.blocked:
        title += f" ({verb}: {c.blocked})"
    if isinstance(c, Create) and c.after is not None:
        unknown = [f"(unknown until apply: {r})" for r in _create_unknowns(c)]
        if unknown:
            title += " value " + ", ".join(unknown)
    if c.drift:
        title += " [drift]"
    return title


def _create_unknowns(c: Change) -> list[str]:
    value = (c.after or {}).get("value")
    if isinstance(value, Mapping) and "unknown" in value:
        return [str(value["unknown"])]
    return []


_COLOURS = {"+": "green", "~": "yellow", "-": "red"}


def render_text(plan: Plan, *, color: bool = False) -> str:
    """Terraform-like text: one ``+ ~ -`` line per change, field lines, warnings, summary."""
    import click

    lines: list[str] = []
    for w in plan.warnings:
        lines.append(("Warning: " if not color else click.style("Warning: ", fg="yellow")) + w)
    if plan.warnings:
        lines.append("")
    if not plan.changes:
        lines.append("No changes. The database matches the manifests.")
        return "\n".join(lines) + "\n"
    for c in plan.changes:
        title = change_title(c)
        lines.append(click.style(title, fg=_COLOURS.get(c.symbol)) if color else title)
        for f in c.fields:
            lines.append("    " + field_text(f))
    lines.append("")
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def render_json(plan: Plan) -> str:
    """The documented JSON form (without the saved-plan payload)."""
    return plan.to_json_bytes().decode()


def _groups(plan: Plan) -> list[tuple[str, list[Change]]]:
    groups: dict[str, list[Change]] = {}
    for c in plan.changes:
        groups.setdefault(c.provider_id or "gateway", []).append(c)
    return sorted(groups.items())


def render_markdown(plan: Plan, *, limit: int = MARKDOWN_LIMIT) -> str:
    """Markdown for a PR comment (Jinja2 template), kept under ``limit`` characters."""
    from importlib.resources import files

    import jinja2

    source = files("gwconfig").joinpath("templates/plan.md.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=False, trim_blocks=True, lstrip_blocks=True)
    env.filters["field_text"] = field_text
    env.filters["title"] = change_title
    template = env.from_string(source)
    groups = _groups(plan)
    total = len(plan.changes)

    def render(cap: int) -> str:
        shown: list[tuple[str, list[Change], int]] = []
        budget = cap
        for name, changes in groups:
            take = changes[: max(budget, 0)]
            budget -= len(take)
            shown.append((name, take, len(changes) - len(take)))
        omitted = sum(n for _, _, n in shown)
        return template.render(
            plan=plan,
            summary=plan.summary,
            summary_line=summary_line(plan),
            groups=shown,
            omitted=omitted,
            total=total,
        )

    text = render(total)
    if len(text) > limit:
        lo, hi = 0, total  # largest cap whose rendering fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if len(render(mid)) <= limit:
                lo = mid
            else:
                hi = mid - 1
        text = render(lo)
    if len(text) > limit:  # even the summary alone is too big (thousands of warnings)
        text = text[: limit - 200] + "\n\n_(comment truncated at the GitHub size limit)_\n"
    return text
