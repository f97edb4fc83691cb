"""The one scrubber of provider output: every secret of a provider is removed before text leaves.

Each provider has a :class:`Secrets`: its API keys (every environment) and sensitive connection
parameters, opened lazily, only when text must be scrubbed (error paths: HTTP error bodies,
streamed error events, exception messages, usage records, logs; and answers, plain and
streamed, whose text, tool calls and bodies are tested with :meth:`Scrubber.may_hold` and
scrubbed when it says they may hold one).

Scrubbing replaces, with ``***``:

* each secret and the forms an upstream may echo it in: URL-encoded, JSON-escaped, base64
  (``Bearer <key>`` or ``key=<key>`` contain the plain form);
* any fragment of 8 or more characters of a secret (an upstream that echoes a cut or partly
  masked key, such as ``sk-proj-AbCd1234...``).

:meth:`Secrets.scrub` scrubs *before* cutting text to length, so a secret that straddles the cut
never leaves its first characters behind.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

import orjson

from gwconfig.errors import GwconfigError

MASK = "***"
#: Secrets shorter than this are not scrubbed (they would mangle ordinary words).
MIN_SECRET_LENGTH = 4
#: Fragments of a secret at least this long are scrubbed wherever they appear.
FRAGMENT = 8


def _forms(secret: str) -> set[str]:
    raw = secret.encode("utf-8", "surrogatepass")
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        orjson.dumps(secret).decode()[1:-1],
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


class Scrubber:
    """Removes a fixed set of secrets (and their encodings and fragments) from text."""

    __slots__ = ("_blocks", "_byte_grams", "_grams", "_longest", "_pattern", "_short")

    def __init__(self, secrets: Iterable[str]) -> None:
        values = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
        forms = set().union(*(_forms(s) for s in values)) if values else set()
        # longest first: a secret that contains another is replaced whole
        ordered = sorted(forms, key=lambda f: (-len(f), f))
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._longest = len(ordered[0]) if ordered else 0
        self._grams = frozenset(
            s[i : i + FRAGMENT] for s in values for i in range(len(s) - FRAGMENT + 1)
        )
        # the forms' bytes: the short ones whole; the others by their fragments of 8 bytes,
        # each of which holds one of the form's 4-byte blocks at a multiple of 4
        raw = {f.encode("utf-8", "surrogatepass") for f in forms}
        self._short = tuple(b for b in raw if len(b) < FRAGMENT)
        self._byte_grams = frozenset(
            b[i : i + FRAGMENT] for b in raw for i in range(len(b) - FRAGMENT + 1)
        )
        self._blocks = tuple(
            sorted(
                {b[i : i + 4] for b in raw if len(b) >= FRAGMENT for i in range(0, len(b) - 3, 4)}
            )
        )

    def may_hold(self, data: bytes) -> bool:
        """Whether ``data`` holds a secret (whole, encoded, or a fragment of 8 bytes), as bytes
        written as is: the cheap test before scrubbing text that is rarely dirty."""
        if any(short in data for short in self._short):
            return True
        grams = self._byte_grams
        for block in self._blocks:
            at = data.find(block)
            while at >= 0:
                for start in range(max(at - 4, 0), at + 1):
                    if data[start : start + FRAGMENT] in grams:
                        return True
                at = data.find(block, at + 1)
        return False

    def __call__(self, text: str, limit: int | None = None) -> str:
        """``text`` without any secret; then cut to ``limit`` characters when given."""
        if limit is not None and len(text) > limit + self._longest:
            # a secret starting before the cut ends within this window: scrubbed whole
            text = text[: limit + self._longest]
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        if self._grams:
            text = self._mask_fragments(text)
        return text[:limit] if limit is not None else text

    def _mask_fragments(self, text: str) -> str:
        grams, n = self._grams, FRAGMENT
        spans: list[list[int]] = []
        for i in range(len(text) - n + 1):
            if text[i : i + n] in grams:
                if spans and spans[-1][1] >= i:
                    spans[-1][1] = i + n
                else:
                    spans.append([i, i + n])
        if not spans:
            return text
        out, pos = [], 0
        for start, end in spans:
            out.append(text[pos:start])
            out.append(MASK)
            pos = end
        out.append(text[pos:])
        return "".join(out)


class Secrets:
    """Every secret of one provider, opened on first use; :meth:`scrub` is the scrubber."""

    __slots__ = ("_openers", "_scrubber")

    def __init__(self, openers: Iterable[Callable[[], str | None]] = ()) -> None:
        self._openers = tuple(openers)
        self._scrubber: Scrubber | None = None

    @property
    def scrubber(self) -> Scrubber:
        """The provider's scrubber (opens every secret the first time)."""
        if self._scrubber is None:
            values = []
            for opener in self._openers:
                try:
                    value = opener()
                except Exception:  # a secret that cannot be opened was never sent either
                    continue
                if value:
                    values.append(value)
            self._scrubber = Scrubber(values)
        return self._scrubber

    def scrub(self, text: str, limit: int | None = None) -> str:
        """``text`` with every secret of the provider masked, then cut to ``limit``."""
        return self.scrubber(text, limit)


NO_SECRETS = Secrets()


def scrub_error(exc: GwconfigError, secrets: Secrets) -> str:
    """Scrub ``exc``'s message in place (it may be raised on to the caller); return it."""
    text = str(exc)
    clean = secrets.scrub(text)
    if clean != text:
        exc.message = clean
        exc.args = (clean,)
    return clean


def scrub_tree(value: Any, scrubber: Scrubber) -> Any:
    """``value`` (JSON-like: dicts, lists, tuples, strings) with every string scrubbed."""
    if isinstance(value, str):
        return scrubber(value)
    if isinstance(value, dict):
        return {k: scrub_tree(v, scrubber) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub_tree(v, scrubber) for v in value)
    return value


def _strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            _strings(item, out)
    elif isinstance(value, list | tuple):
        for item in value:
            _strings(item, out)


def may_hold(scrubber: Scrubber, *values: Any) -> bool:
    """Whether any string inside ``values`` (JSON-like) may hold one of the secrets: the cheap
    test (:meth:`Scrubber.may_hold`) before scrubbing a successful answer, which rarely holds
    one."""
    found: list[str] = []
    for value in values:
        _strings(value, found)
    return bool(found) and scrubber.may_hold("\x00".join(found).encode("utf-8", "surrogatepass"))
