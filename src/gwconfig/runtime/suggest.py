"""Bounded "did you mean" hints for a model name no route, alias or model answers to.

``difflib`` over every name costs tens of milliseconds at 24,000 models, and any caller able to
send a request can name unknown models on purpose. :class:`NameIndex` sorts the names once
(forwards and reversed, case-folded) and scores a miss against its neighbours in those orders
only: the names sharing its beginning or its end (a typo near the end, or near the start), and
the same for the part after its last ``/`` (``provider/model`` spellings). At most
``4 * 2 * WINDOW`` names are compared, whatever the size of the configuration; names longer than
:data:`MAX_QUERY` get no hint.
"""

from __future__ import annotations

import bisect
import difflib
from collections.abc import Callable, Iterable

#: names looked at on each side of a miss, in each of the sorted orders
WINDOW = 24
#: a longer unknown name gets no hint (no name it could be a misspelling of is that long)
MAX_QUERY = 256
#: difflib's similarity cutoff (as ``difflib.get_close_matches``' default)
CUTOFF = 0.6


class NameIndex:
    """The names a configuration answers to, sorted for bounded near-miss lookups."""

    __slots__ = ("_backward", "_backward_names", "_forward", "_forward_names", "_longest")

    def __init__(self, names: Iterable[str]) -> None:
        unique = list(dict.fromkeys(names))
        self._longest = max(map(len, unique), default=0)
        forward = sorted((name.lower(), name) for name in unique)
        backward = sorted((name.lower()[::-1], name) for name in unique)
        self._forward = [key for key, _ in forward]
        self._forward_names = [name for _, name in forward]
        self._backward = [key for key, _ in backward]
        self._backward_names = [name for _, name in backward]

    @property
    def size(self) -> int:
        """How many names the index holds."""
        return len(self._forward)

    def candidates(self, query: str) -> list[str]:
        """The names compared with ``query``: its neighbours in each order (bounded)."""
        if not query or len(query) > MAX_QUERY:
            return []
        folded = query.lower()
        probes = [folded]
        tail = folded.rsplit("/", 1)[-1]
        if tail and tail != folded:
            probes.append(tail)
        found: dict[str, None] = {}
        for probe in probes:
            for keys, names, key in (
                (self._forward, self._forward_names, probe),
                (self._backward, self._backward_names, probe[::-1]),
            ):
                at = bisect.bisect_left(keys, key)
                found.update(dict.fromkeys(names[max(at - WINDOW, 0) : at + WINDOW]))
        return list(found)

    def close(self, query: str, n: int = 3) -> list[str]:
        """Up to ``n`` names close to ``query``, best first (``difflib`` scoring)."""
        # a ratio of CUTOFF needs the query no longer than (2 / CUTOFF - 1) times the name
        if len(query) * CUTOFF > (2 - CUTOFF) * self._longest:
            return []
        return difflib.get_close_matches(query, self.candidates(query), n=n, cutoff=CUTOFF)


def miss_hint(
    index: NameIndex,
    routes: Iterable[str],
    identifier: str,
    keep: Callable[[str], bool] | None = None,
) -> str | None:
    """The hint for a name that did not resolve: close names from ``index``, else some
    ``routes``; with ``keep``, only the names it accepts (a token's permitted models)."""
    n = 3 if keep is None else index.size
    close = [c for c in index.close(identifier, n=n) if keep is None or keep(c)][:3]
    if close:
        return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    kept = [r for r in sorted(routes) if keep is None or keep(r)]
    if kept:
        return "routes: " + ", ".join(kept[:10])
    return None
