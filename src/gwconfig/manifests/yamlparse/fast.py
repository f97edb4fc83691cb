"""A fast parser for the plain block-style YAML subset that manifests are usually written in.

It understands block mappings and sequences, plain scalars, simple quoted strings, empty flow
collections and comment lines: what ``yaml.safe_dump`` writes and what people type. On anything
else (flow collections, anchors, tags, block scalars, multi-line scalars, YAML 1.1 surprises,
duplicate keys, odd indentation, ...) it gives up and returns None, and the caller uses the
reference loader, which reports errors. When it does return, the documents and positions are
exactly what :func:`gwconfig.manifests.yamlparse.loader.load_yaml` would produce (a
differential test checks this).
"""

from __future__ import annotations

import re
from typing import Any

from gwconfig.errors import Diagnostic
from gwconfig.manifests.documents import Positions, RawDocument
from gwconfig.manifests.yamlparse.scalars import _flow, _key, _scalar, _Unsupported

#: Characters the subset never has to deal with: tabs, CR, YAML line breaks beyond LF, BOMs,
#: control and other non-printable characters. (ASCII text is checked with the small pattern.)
_OUTSIDE_ASCII = re.compile("[^\n\x20-\x7e]")
_OUTSIDE: re.Pattern[str] | None = None
_OUTSIDE_TEXT = (
    "[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
_KEY = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_./-]*):(?: +(.*))?\Z")
_KEY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*\Z")
#: Deeper documents go to the reference loader (which allows 64 levels, then reports).
_MAX_DEPTH = 32


class ParseCache:
    """Scalars, keys and lines already understood, shared by the files of one run.

    ``lines`` maps the text of a line seen before to what it was (see :data:`_KEY_SCALAR`):
    manifests repeat lines a lot (``model_type: chat``, ``- streaming``), and such a line in
    the same place of the same kind of collection needs none of the work again.
    """

    __slots__ = ("keys", "lines", "scalars")

    def __init__(self) -> None:
        self.scalars: dict[str, Any] = {}
        self.keys: set[str] = set()
        self.lines: dict[str, tuple[int, int, str, Any, int]] = {}


#: Kinds of remembered lines: (kind, indent, key, value, column).
#: ``key: scalar`` (column of the value), ``- scalar`` (column of the item), ``key:`` (a block
#: follows). Only lines without trailing blanks or extra spaces are remembered; the value is the
#: one the scalar cache holds for that text (immutable).
_KEY_SCALAR, _ITEM_SCALAR, _KEY_BLOCK = 0, 1, 2


def has_outside_characters(text: str) -> bool:
    """True if ``text`` holds a character the fast subset never deals with (see _OUTSIDE_*)."""
    global _OUTSIDE
    if text.isascii():
        # The same answer as _OUTSIDE_ASCII.search (tested), without a regular expression.
        return not text.replace("\n", "").isprintable()
    if _OUTSIDE is None:
        _OUTSIDE = re.compile(_OUTSIDE_TEXT)
    return _OUTSIDE.search(text) is not None


def parse_fast(
    text: str,
    path: str,
    *,
    positions: bool = True,
    cache: ParseCache | None = None,
    entities: bool = False,
) -> tuple[list[RawDocument], list[Diagnostic]] | None:
    """Documents of ``text`` if it is inside the fast subset, else None.

    With ``positions=False`` no positions are recorded (faster); the caller attaches a way to
    compute them when a diagnostic needs one (see :meth:`RawDocument.ensure_positions`).
    ``entities=True`` (with ``positions=False``) still records the few positions that compiled
    sources need: mappings that are items of a sequence and keys named ``value``. They are
    the very entries a full parse records for them.
    """
    if has_outside_characters(text):
        return None
    try:
        light = entities and not positions
        return _parse(text, path, positions, cache or ParseCache(), light), []
    except _Unsupported:
        return None


def _parse(  # one tight loop, on purpose
    text: str, path: str, record: bool, cache: ParseCache, light: bool = False
) -> list[RawDocument]:
    docs: list[RawDocument] = []
    positions: Positions = {}
    root: dict[str, Any] | None = None
    root_line = root_col = 0
    started = False  # an explicit '---' opened the current document
    memo = cache.scalars
    good_keys = cache.keys
    lane = cache.lines
    miss: Any = cache  # sentinel: never a parsed value
    # The innermost collection lives in locals; the outer ones on the stack.
    stack: list[tuple[int, Any, int, bool]] = []
    cur: Any = None
    cur_indent, cur_id, cur_seq = -1, 0, False
    pending: tuple[dict[str, Any], str, int, int] | None = None
    lineno = 0
    for line in text.split("\n"):
        lineno += 1
        hit = lane.get(line)
        if hit is not None and (pending is not None or hit[1] <= cur_indent):
            # A line seen before: the first of a nested block, or in the current collection or
            # one it is nested in. Exactly what the full path below does for it (same checks,
            # same positions, same value object).
            kind, indent = hit[0], hit[1]
            if pending is not None:
                owner, pkey, pindent, kline = pending
                pending = None
                if kind == _ITEM_SCALAR:
                    if indent < pindent:
                        raise _Unsupported
                    new: Any = []
                else:
                    if indent <= pindent:
                        raise _Unsupported
                    new = {}
                owner[pkey] = new
                if record or (light and pkey == "value"):
                    positions[(id(owner), pkey)] = (kline, pindent + 1, lineno, indent + 1)
                stack.append((cur_indent, cur, cur_id, cur_seq))
                if len(stack) > _MAX_DEPTH:
                    raise _Unsupported
                cur_indent, cur, cur_id, cur_seq = indent, new, id(new), kind == _ITEM_SCALAR
            elif indent < cur_indent or (cur_seq and kind != _ITEM_SCALAR):
                while cur_indent > indent or (
                    cur_indent == indent and cur_seq and kind != _ITEM_SCALAR
                ):
                    if not stack:
                        raise _Unsupported
                    cur_indent, cur, cur_id, cur_seq = stack.pop()
                if cur_indent != indent:
                    raise _Unsupported
            if kind == _ITEM_SCALAR:
                if not cur_seq:
                    raise _Unsupported
                if record:
                    positions[(cur_id, len(cur))] = (lineno, hit[4], lineno, hit[4])
                cur.append(hit[3])
                continue
            key = hit[2]
            if key in cur:
                raise _Unsupported
            if kind == _KEY_SCALAR:
                if record or (light and key == "value"):
                    positions[(cur_id, key)] = (lineno, indent + 1, lineno, hit[4])
                cur[key] = hit[3]
            else:
                pending = (cur, key, indent, lineno)
                cur[key] = None
            continue
        content = line.lstrip(" ")
        if not content:
            continue
        first = content[0]
        if first == "#":
            continue
        indent = len(line) - len(content)
        if content[-1] == " ":
            content = content.rstrip(" ")
        if pending is not None:
            # The value of `key:` on the previous line is a nested block starting here.
            owner, pkey, pindent, kline = pending
            pending = None
            if content[:2] == "- " and indent >= pindent:
                new = []
            elif first != "-" and indent > pindent:
                new = {}
            else:
                raise _Unsupported  # an empty value (null) or a separator: reference loader
            owner[pkey] = new
            if record or (light and pkey == "value"):
                positions[(id(owner), pkey)] = (kline, pindent + 1, lineno, indent + 1)
            stack.append((cur_indent, cur, cur_id, cur_seq))
            if len(stack) > _MAX_DEPTH:
                raise _Unsupported  # the reference loader explains the limit
            cur_indent, cur, cur_id, cur_seq = indent, new, id(new), not isinstance(new, dict)
        elif indent != cur_indent or (cur_seq and first != "-") or (indent == 0 and first in "-.%"):
            if indent == 0 and first in "-.%" and content[:2] != "- ":
                if content != "---":
                    raise _Unsupported
                if root is not None:
                    docs.append(
                        RawDocument(path, len(docs) + 1, root, root_line, root_col, positions)
                    )
                    positions, root, stack = {}, None, []
                    cur_indent, cur, cur_id, cur_seq = -1, None, 0, False
                elif started:
                    raise _Unsupported  # an empty document
                started = True
                continue
            if root is None:
                if first == "-":
                    raise _Unsupported
                root, root_line, root_col = {}, lineno, indent + 1
                cur_indent, cur, cur_id, cur_seq = indent, root, id(root), False
            else:
                while cur_indent > indent or (cur_indent == indent and cur_seq and first != "-"):
                    if not stack:
                        raise _Unsupported
                    cur_indent, cur, cur_id, cur_seq = stack.pop()
                if cur_indent != indent:
                    raise _Unsupported
        if cur_seq:
            if content[:2] != "- ":
                raise _Unsupported
            body = content[2:]
            item_indent = indent + 2
            if body[0] == " ":
                stripped = body.lstrip(" ")
                item_indent += len(body) - len(stripped)
                body = stripped
            if record:
                index = len(cur)
                positions[(cur_id, index)] = (lineno, item_indent + 1, lineno, item_indent + 1)
            if (": " in body or body[-1] == ":") and _KEY.match(body):
                if light:
                    index = len(cur)
                    positions[(cur_id, index)] = (lineno, item_indent + 1, lineno, item_indent + 1)
                new = {}
                cur.append(new)
                stack.append((cur_indent, cur, cur_id, cur_seq))
                if len(stack) > _MAX_DEPTH:
                    raise _Unsupported
                cur_indent, cur, cur_id, cur_seq = item_indent, new, id(new), False
                indent, content = item_indent, body
            else:
                if body[0] == "-" and (len(body) == 1 or body[1] == " "):
                    raise _Unsupported
                if body[0] in "[{":
                    if light and body[0] == "{":  # a one-line mapping may be an entity
                        index = len(cur)
                        positions[(cur_id, index)] = (
                            lineno,
                            item_indent + 1,
                            lineno,
                            item_indent + 1,
                        )
                    where = positions if record or light else None
                    value = _flow(body, lineno, item_indent + 1, where, None if record else "value")
                else:
                    value = memo.get(body, miss)
                    if value is miss:
                        value = memo[body] = _scalar(body)
                    if item_indent == indent + 2 and len(line) == item_indent + len(body):
                        lane[line] = (_ITEM_SCALAR, indent, "", value, item_indent + 1)
                cur.append(value)
                continue
        elif first == "-" and (len(content) == 1 or content[1] == " "):
            raise _Unsupported
        colon = content.find(": ")
        if colon > 0:
            key = content[:colon]
            raw_value = content[colon + 2 :]
            if raw_value[0] == " ":
                raw_value = raw_value.lstrip(" ")
        elif content[-1] == ":":
            key = content[:-1]
            raw_value = ""
        else:
            raise _Unsupported
        if key not in good_keys:
            if not _KEY_NAME.match(key):
                raise _Unsupported
            good_keys.add(_key(key))
        if key in cur:
            raise _Unsupported
        # A line of this mapping itself (not the first key of a sequence item), nothing trailing:
        plain = len(line) == indent + len(content) and (indent == 0 or line[:indent].isspace())
        if not raw_value:
            if plain:
                lane[line] = (_KEY_BLOCK, indent, key, None, 0)
            pending = (cur, key, indent, lineno)
            cur[key] = None  # placeholder, replaced by the nested block
            continue
        if record or (light and key == "value"):
            positions[(cur_id, key)] = (
                lineno,
                indent + 1,
                lineno,
                indent + len(content) - len(raw_value) + 1,
            )
        if raw_value[0] in "[{":
            vcol = indent + len(content) - len(raw_value) + 1
            where = positions if record or light else None
            value = _flow(raw_value, lineno, vcol, where, None if record else "value")
        else:
            value = memo.get(raw_value, miss)
            if value is miss:
                value = memo[raw_value] = _scalar(raw_value)
            if plain:
                vcol = indent + len(content) - len(raw_value) + 1
                lane[line] = (_KEY_SCALAR, indent, key, value, vcol)
        cur[key] = value
    if pending is not None:
        raise _Unsupported
    if root is not None:
        docs.append(RawDocument(path, len(docs) + 1, root, root_line, root_col, positions))
    elif started:
        raise _Unsupported
    return docs
