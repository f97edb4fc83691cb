"""Work in a forked child process, its result sent back as bytes through a pipe.

Used where two independent pieces of CPU work can overlap on a machine with two or more CPUs:
the front end shares per-file work with a child, and ``plan``/``apply`` compile the manifests in a
child while the parent imports the database layer and reads the state. A child that fails in
any way yields ``None``; the caller then does the work itself, so a failing child can cost time,
never correctness.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

__all__ = ["Alongside", "Forked", "can_fork", "fork_call"]

T = TypeVar("T")


def can_fork() -> bool:
    """True when forking is possible, safe (one thread) and useful (two or more CPUs)."""
    if not hasattr(os, "fork") or threading.active_count() != 1:
        return False
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return cpus >= 2


class Forked:
    """A forked child computing some bytes."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid, self.fd = pid, fd
        self._done = False

    def result(self) -> bytes | None:
        """The child's bytes, or None if it failed (waits for it; call once)."""
        if self._done:
            raise RuntimeError("Forked.result() called twice")
        self._done = True
        with os.fdopen(self.fd, "rb") as source:
            payload = source.read()
        _, status = os.waitpid(self.pid, 0)
        return payload if status == 0 and payload else None


def fork_call(work: Callable[[], bytes]) -> Forked:
    """Start ``work()`` in a forked child; collect its bytes with :meth:`Forked.result`."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # nothing buffered before the fork is written twice
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, send, leave without running any exit handlers
        code = 0
        try:
            os.close(read_fd)
            payload = work()
            with os.fdopen(write_fd, "wb") as out:
                out.write(payload)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(write_fd)
    return Forked(pid, read_fd)


class Alongside(Generic[T]):
    """Work to run in this process while a forked child works (see ``compile_path(alongside=)``).

    ``plan`` and ``apply`` open the database this way while the manifests are parsed. Call it
    once (the compiler does); its exception is kept, and :meth:`result` gives the value or raises
    the exception then, so the manifests' own problems are reported first.
    """

    def __init__(self, work: Callable[[], T]) -> None:
        self.work = work
        self.ran = False
        self.value: T | None = None
        self.error: Exception | None = None

    def __call__(self) -> None:
        self.ran = True
        try:
            self.value = self.work()
        except Exception as exc:  # raised again by result()
            self.error = exc

    def result(self) -> T:
        """The work's value (running it now if the compiler did not)."""
        if not self.ran:
            self()
        if self.error is not None:
            raise self.error
        return cast(T, self.value)
