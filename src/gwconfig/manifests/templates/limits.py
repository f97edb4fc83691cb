"""The budget of one template render: time, loop iterations, text written, size of values.

A template is untrusted input: ``{{ 'x' * 10**9 }}`` or a loop over a loop must fail with a
diagnostic, not take the machine. :class:`Budget` is consulted by every hook of the sandbox
(:mod:`gwconfig.manifests.templates.sandbox`): each operator, call, filter, literal, loop
iteration and write. Operations that can multiply their input (repetition, powers, padding,
formatting, joining) are checked *before* they run, from the sizes of their operands; every other
result is measured after, which is safe because it is at most a small multiple of its inputs.

The *size* of a value counts the characters of its strings, about one per three bits of its
integers, and one per item of every list, tuple, dict and namespace, with shared parts counted
every time they appear (what printing it would produce), so ``[[1]*1000]*1000`` is 1,001,001.
"""

from __future__ import annotations

from collections import abc
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from jinja2.utils import Namespace

from gwconfig.manifests.limits import MAX_DEPTH


@dataclass(frozen=True)
class TemplateLimits:
    """What one render of one template may use (documented in docs/manifests.md)."""

    seconds: float = 10.0
    iterations: int = 100_000
    value_size: int = 1_000_000
    int_bits: int = 4096
    output: int = 8 * 1024 * 1024
    value_depth: int = MAX_DEPTH
    block_nesting: int = 16
    bracket_nesting: int = 32


DEFAULT_LIMITS = TemplateLimits()


class TemplateLimitError(Exception):
    """A template went past one of its limits; ``lineno`` when known before rendering."""

    def __init__(self, message: str, lineno: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.lineno = lineno


_SCALARS = (float, complex, type(None))
_SEQUENCES = (list, tuple, set, frozenset, abc.Sequence, abc.Set, abc.MappingView)


def children(value: Any) -> Iterable[Any] | None:
    """The parts of a container value, or None for anything that is not one."""
    if isinstance(value, Namespace):
        value = object.__getattribute__(value, "_Namespace__attrs")
    if isinstance(value, abc.Mapping):
        return (part for pair in value.items() for part in pair)
    if isinstance(value, _SEQUENCES):
        return cast(Iterable[Any], value)
    return None


class Budget:
    """The running totals of one render, checked against its :class:`TemplateLimits`."""

    def __init__(self, limits: TemplateLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._deadline = clock() + limits.seconds
        self.iterations = 0
        self.written = 0
        self._steps = 0
        # sizes of the values given to the template (``vars``): they are never changed (the
        # sandbox is immutable) and stay alive for the whole render, so their ids stay valid
        self._known: dict[int, int] = {}

    # --- time, iterations, output -------------------------------------------------------------

    def tick(self) -> None:
        """Fail when the render has run out of time."""
        if self._clock() > self._deadline:
            raise TemplateLimitError(
                f"rendering took longer than {self.limits.seconds:g} seconds (the template "
                "limit); look for loops or filters over large values"
            )

    def iterate(self) -> None:
        """Count one loop iteration (all loops of the render together)."""
        self.iterations += 1
        if self.iterations > self.limits.iterations:
            raise TemplateLimitError(
                f"more than {self.limits.iterations:,} loop iterations in total (the template "
                "limit, nested loops included)"
            )
        self.tick()

    def write(self, text: str) -> str:
        """Count text written (output, or captured by a macro, block or ``set``)."""
        self.written += len(text)
        if self.written > self.limits.output:
            raise TemplateLimitError(
                f"the template writes more than {self.limits.output // (1024 * 1024)} MiB of "
                "text (the template limit, text captured by macros and blocks included)"
            )
        self.tick()
        return text

    # --- sizes --------------------------------------------------------------------------------

    def too_big(self, what: str, size: int | None = None) -> TemplateLimitError:
        """The error for a value past :attr:`TemplateLimits.value_size`."""
        cap = self.limits.value_size
        got = f" would have {size:,} characters or items" if size is not None else " is too large"
        return TemplateLimitError(
            f"{what}{got}; a template value may have at most {cap:,} (the template limit)"
        )

    def check_int(self, value: int) -> int:
        """``value`` when it has at most :attr:`TemplateLimits.int_bits` bits."""
        if value.bit_length() > self.limits.int_bits:
            raise TemplateLimitError(
                f"an integer of more than {self.limits.int_bits:,} bits (the template limit)"
            )
        return value

    def learn(self, value: Any) -> None:
        """Record the sizes of the values given to the template (they may exceed the limit)."""
        self._size(value, 0, self._known, set(), None)

    def is_known(self, value: Any) -> bool:
        """True for a value given to the template (or one of its parts), unchanged."""
        return id(value) in self._known

    def size(self, value: Any) -> int:
        """The size of ``value``; raises as soon as it passes the limit (given values excepted)."""
        if id(value) in self._known:
            return self._known[id(value)]
        return self._size(value, 0, {}, set(), self.limits.value_size)

    def _size(
        self, value: Any, depth: int, memo: dict[int, int], active: set[int], cap: int | None
    ) -> int:
        if isinstance(value, str | bytes):
            return len(value)
        if isinstance(value, int):
            return 1 + self.check_int(value).bit_length() // 3
        if isinstance(value, _SCALARS):
            return 1
        if isinstance(value, range):
            return len(value) if _small_range(value) else _HUGE
        key = id(value)
        if key in self._known:
            return self._known[key]
        if key in memo:
            return memo[key]
        parts = children(value)
        if parts is None or key in active:  # other objects; a namespace holding itself
            return 1
        if depth > self.limits.value_depth:
            raise TemplateLimitError(
                f"a value nested more than {self.limits.value_depth} levels deep (the template "
                "limit)"
            )
        active.add(key)
        total = 1
        for part in parts:
            total += self._size(part, depth + 1, memo, active, cap)
            self._steps += 1
            if self._steps & 0xFFF == 0:
                self.tick()
            if cap is not None and total > cap:
                raise self.too_big("a value")
        active.discard(key)
        memo[key] = total
        return total

    def check(self, value: Any) -> Any:
        """``value`` if it is within the limits; iterators come back metered."""
        self.tick()
        if isinstance(value, str | bytes):
            if len(value) > self.limits.value_size:
                raise self.too_big("a string", len(value))
            return value
        if isinstance(value, (bool, *_SCALARS)):
            return value
        if isinstance(value, int):
            return self.check_int(value)
        if isinstance(value, Iterator) and not isinstance(value, Namespace):
            return self.meter(value)
        self.size(value)
        return value

    def meter(self, items: Iterable[Any]) -> Iterator[Any]:
        """``items``, failing once their total size passes the limit (for lazy results)."""
        total = 0
        for item in items:
            total += self.size(item)
            if total > self.limits.value_size:
                raise self.too_big("a sequence", total)
            self.tick()
            yield item

    def iterate_over(self, iterable: Any) -> Iterator[Any]:
        """``iterable`` for a ``{% for %}`` loop, counting each iteration."""
        for item in iterable:
            self.iterate()
            yield item


_HUGE = 1 << 62


def _small_range(value: range) -> bool:
    try:
        len(value)
    except OverflowError:
        return False
    return True
