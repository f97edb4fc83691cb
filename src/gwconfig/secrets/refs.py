"""What a secret reference may point at, and reading ``{file: ...}`` secrets safely.

A provider secret is sent to that provider's ``api_base``, so a reference must never reach
gwconfig's own secrets (``GWCONFIG_*`` variables, the ``.gwconfig/`` state directory with the
embedded encryption key) or the kernel's pseudo files (``/proc/self/environ`` holds every
variable of the process). ``validate`` checks the reference as written; resolution checks again
after following symlinks and ``..``, and once more on the file actually opened.

A ``{file: ...}`` secret is read only from a regular file of at most
:data:`MAX_SECRET_FILE_BYTES`: it is opened without blocking (a FIFO cannot hang the command) and
checked on the opened descriptor (no swap between the check and the read).

Imports only the standard library: ``validate`` runs this on every reference.
"""

from __future__ import annotations

import os
import stat

from gwconfig.errors import SecretError

#: Prefix of every variable gwconfig reads for itself (keys, token, database URL, ...).
OWN_ENV_PREFIX = "GWCONFIG_"
#: Pseudo file systems: reading them gives process secrets or never ends.
FORBIDDEN_ROOTS = ("/proc", "/sys", "/dev")
#: gwconfig's state directory (relative to the working directory), which holds its key file.
STATE_DIR = ".gwconfig"
#: A secret file larger than this is refused (a secret of 64 KiB is already absurd).
MAX_SECRET_FILE_BYTES = 64 * 1024

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def env_reference_problem(name: str) -> str | None:
    """Why ``{env: name}`` may not be used as a provider secret, or None when it may."""
    if name.startswith(OWN_ENV_PREFIX):
        return (
            f"{{env: {name}}} names one of gwconfig's own variables; {OWN_ENV_PREFIX}* "
            "variables hold gwconfig's keys and settings and are never sent to a provider"
        )
    return None


def _forbidden_place(path: str) -> str | None:
    """The forbidden place an absolute, normalised ``path`` is in, or None."""
    for root in FORBIDDEN_ROOTS:
        if path == root or path.startswith(root + "/"):
            return root
    state = os.path.normpath(os.path.join(os.getcwd(), STATE_DIR))
    if path == state or path.startswith(state + os.sep):
        return f"gwconfig's state directory {STATE_DIR}/"
    return None


def _refusal(target: str, place: str, via: str | None = None) -> str:
    where = f"resolves to {via}, inside {place}" if via else f"is inside {place}"
    return (
        f"secret file {target} {where}: secrets are read only from regular files outside "
        f"{', '.join(FORBIDDEN_ROOTS)} and gwconfig's state directory"
    )


def file_reference_problem(target: str) -> str | None:
    """Why ``{file: target}`` may not be used, judged on the path as written (``..`` folded)."""
    lexical = os.path.normpath(os.path.join(os.getcwd(), os.path.expanduser(target)))
    place = _forbidden_place(lexical)
    return None if place is None else _refusal(target, place)


def _opened_path(fd: int) -> str | None:
    """The path the kernel reports for an open descriptor (Linux), or None when unknown."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def read_secret_file(target: str, where: str) -> str:
    """The text of secret file ``target`` (trailing newline stripped); ``where`` names the secret.

    Raises :class:`FileNotFoundError` when it does not exist and :class:`SecretError` when it is
    forbidden, not a regular file, larger than :data:`MAX_SECRET_FILE_BYTES`, not UTF-8 or empty.
    """
    problem = file_reference_problem(target)
    if problem is not None:
        raise SecretError(f"{problem} (secret for {where})")
    expanded = os.path.expanduser(target)
    real = os.path.realpath(expanded)
    place = _forbidden_place(real)
    if place is not None:
        raise SecretError(f"{_refusal(target, place, real)} (secret for {where})")
    try:
        fd = os.open(expanded, _OPEN_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SecretError(
            f"cannot open secret file {target} (secret for {where}): {exc.strerror or exc}"
        ) from None
    try:
        # The path may have been swapped for a symlink since the check above: judge the file
        # that is actually open.
        opened = _opened_path(fd)
        place = _forbidden_place(opened) if opened and opened.startswith("/") else None
        if opened is not None and place is not None:
            raise SecretError(f"{_refusal(target, place, opened)} (secret for {where})")
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SecretError(
                f"secret file {target} is {_kind(st.st_mode)}, not a regular file "
                f"(secret for {where})"
            )
        limit = MAX_SECRET_FILE_BYTES
        too_big = SecretError(
            f"secret file {target} is larger than {limit // 1024} KiB (secret for {where})"
        )
        if st.st_size > limit:
            raise too_big
        data = _read_at_most(fd, limit + 1)
        if len(data) > limit:
            raise too_big
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(f"secret file {target} is not UTF-8 text (secret for {where})") from None
    value = text.rstrip("\r\n")
    if value == "":
        raise SecretError(f"secret file {target} is empty (secret for {where})")
    return value


def _read_at_most(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left > 0:
        try:
            chunk = os.read(fd, left)
        except BlockingIOError:  # pragma: no cover - regular files never block
            break
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"
