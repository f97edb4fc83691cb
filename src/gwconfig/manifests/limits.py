"""How much manifest input a run reads: a size limit per file and for all files together.

A manifest file costs ~17 times its size in memory once parsed, so an unbounded file (or a
link to one) could take the process down. The limits are set by environment variables, so
every command that reads manifests (``validate``, ``compile``, ``plan``, ``apply``) and the
Python API share them:

* ``GWCONFIG_MAX_FILE_SIZE`` (default 8 MiB) for each manifest file and the values file;
* ``GWCONFIG_MAX_TOTAL_SIZE`` (default 64 MiB) for all manifest files of a run together.

Sizes are a number of bytes, optionally with a unit (``512KiB``, ``16MiB``, ``1GiB``; ``K``,
``M``, ``G`` mean the same binary units).

Data in a manifest document nests at most :data:`MAX_DEPTH` levels (the document's mapping is
level 0). The YAML loader, template values, and every writer of the gateway database (the REST
API, the seed service) and ``import`` refuse deeper data with :func:`too_deep`, so the database
never holds a value that ``dump`` could not write as a valid manifest.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gwconfig.errors import ConfigurationError

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
FILE_SIZE_VAR = "GWCONFIG_MAX_FILE_SIZE"
TOTAL_SIZE_VAR = "GWCONFIG_MAX_TOTAL_SIZE"
DEFAULT_MAX_FILE_SIZE = 8 * MIB
DEFAULT_MAX_TOTAL_SIZE = 64 * MIB

#: how deep data nests in a manifest document (its top-level mapping is level 0)
MAX_DEPTH = 64
DEPTH_MESSAGE = f"data nested deeper than {MAX_DEPTH} levels"
#: levels above a model's ``parameters`` in a Provider document (models, the item, parameters)
MODEL_PARAMETERS_DEPTH = 3
#: MariaDB's JSON columns (``JSON_VALID``) hold at most this many nested arrays and objects
MARIADB_JSON_DEPTH = 31

_SIZE = re.compile(r"\s*(\d+)\s*(?:(k|m|g)(?:i?b)?|b)?\s*\Z", re.IGNORECASE)
_UNITS = {None: 1, "k": KIB, "m": MIB, "g": GIB}


def parse_size(text: str, variable: str) -> int:
    """A size such as ``8388608``, ``512KiB`` or ``16M`` in bytes; a clear error otherwise."""
    match = _SIZE.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ConfigurationError(
            f"{variable}={text[:40]!r} is not a size",
            hint=f"give a positive number of bytes, or one with a unit: {variable}=16MiB",
        )
    unit = match.group(2).lower() if match.group(2) else None
    return int(match.group(1)) * _UNITS[unit]


def format_size(size: int) -> str:
    """``8 MiB``, ``50.3 MiB``, ``512 KiB`` or ``100 bytes``."""
    for unit, name in ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if size >= unit:
            value = size / unit
            return f"{value:.0f} {name}" if value == int(value) else f"{value:.1f} {name}"
    return f"{size} bytes"


@dataclass(frozen=True)
class Limits:
    """The size limits of one run (see the module docstring)."""

    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    max_total_size: int = DEFAULT_MAX_TOTAL_SIZE

    @classmethod
    def from_env(cls) -> Limits:
        """The limits set by ``GWCONFIG_MAX_FILE_SIZE`` / ``GWCONFIG_MAX_TOTAL_SIZE``."""
        file_size = os.environ.get(FILE_SIZE_VAR, "").strip()
        total_size = os.environ.get(TOTAL_SIZE_VAR, "").strip()
        return cls(
            parse_size(file_size, FILE_SIZE_VAR) if file_size else DEFAULT_MAX_FILE_SIZE,
            parse_size(total_size, TOTAL_SIZE_VAR) if total_size else DEFAULT_MAX_TOTAL_SIZE,
        )


class ReadProblem(Exception):
    """A manifest file that must not be read: not a regular file, or over the size limit."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def too_large(size: int | None, limit: int) -> ReadProblem:
    """The problem of a file of ``size`` bytes (None: it grew while read) over ``limit``."""
    what = "grew while being read and is" if size is None else f"is {format_size(size)},"
    over = "over" if size is not None else "more than"
    return ReadProblem(
        f"file {what} {over} the limit of {format_size(limit)} for a manifest file",
        hint=f"raise the limit with {FILE_SIZE_VAR} (e.g. {FILE_SIZE_VAR}={_suggest(size, limit)})",
    )


def _suggest(size: int | None, limit: int) -> str:
    wanted = max(size or 0, 2 * limit)
    return f"{-(-wanted // MIB)}MiB"


def read_limited(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    The size is checked with ``fstat`` before reading and again while reading (the file may
    grow meanwhile). Opening never blocks (a FIFO is refused, not waited on).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ReadProblem(
                "not a regular file", hint="manifests are regular files (no FIFOs or devices)"
            )
        if info.st_size > limit:
            raise too_large(info.st_size, limit)
        chunks: list[bytes] = []
        total = 0
        want = min(info.st_size, limit) + 1  # one byte more tells a file that grew
        while chunk := os.read(fd, want):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise too_large(None, limit)
            want = limit + 1 - total
    finally:
        os.close(fd)
    return b"".join(chunks)


def too_deep(value: Any, depth: int = 0, limit: int = MAX_DEPTH) -> tuple[str | int, ...] | None:
    """The path (below ``value``) of the first item nested deeper than ``limit``, when
    ``value`` stands at level ``depth`` of a document; None when it fits.

    Iterative, so data of any depth (10,000 levels) is measured without recursion.
    """
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(value, depth, ())]
    while stack:
        node, level, path = stack.pop()
        if level > limit:
            return path
        if isinstance(node, Mapping):
            stack.extend((v, level + 1, (*path, str(k))) for k, v in node.items())
        elif isinstance(node, Sequence) and not isinstance(node, str | bytes | bytearray):
            stack.extend((v, level + 1, (*path, i)) for i, v in enumerate(node))
    return None


def json_too_deep(body: bytes) -> bool:
    """Whether the JSON text ``body``, read as a document (its outermost object at level 0),
    holds a container deeper than :data:`MAX_DEPTH` (strings skipped; measured before the text
    is parsed, without recursion)."""
    depth = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub(b"", body)):
        depth += 1 if bracket in (b"[", b"{") else -1
        if depth - 1 > MAX_DEPTH:
            return True
    return False


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")
