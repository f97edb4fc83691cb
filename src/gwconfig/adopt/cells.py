"""Back-office cells as Python values: JSON stored as text, booleans as integers, timestamps as
text, and keys encrypted with the back-office's own Fernet key.

Every function names the row it reads in its errors and never quotes a secret.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from gwconfig.errors import ConfigurationError, SecretError, ValidationFailed
from gwconfig.manifests.limits import DEPTH_MESSAGE, json_too_deep
from gwconfig.manifests.model import CAPABILITY_PATTERN

LEGACY_KEY_VAR = "GWCONFIG_LEGACY_KEY"
#: the largest JSON document read from one back-office cell
MAX_JSON_BYTES = 1024 * 1024
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off", ""}

_CAPABILITY = re.compile(CAPABILITY_PATTERN)
#: capability strings seen to be names already (no normalising, no warning)
_NAMES: set[str] = set()

#: ``open(token)``: the plaintext of a back-office key stored encrypted
Opener = Callable[[str], str]


def json_cell(value: Any, where: str, column: str) -> Any:
    """A JSON document stored as text (or already parsed by the driver); NULL is None."""
    if value is None or isinstance(value, dict | list):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode("utf-8", "replace")
    if not isinstance(value, str):
        raise ValidationFailed(f"{where}: {column} is not JSON text")
    if len(value) > MAX_JSON_BYTES:
        raise ValidationFailed(f"{where}: {column} is larger than {MAX_JSON_BYTES} bytes")
    if not value.strip():
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        if json_too_deep(value.encode()):  # the parser's own limit is past the manifests'
            raise ValidationFailed(f"{where}: {column}: {DEPTH_MESSAGE}") from None
        raise ValidationFailed(
            f"{where}: {column} is not valid JSON ({str(exc).splitlines()[0]})",
            hint="fix the row in the back-office, or map the column to another with --mapping",
        ) from None


def json_object(value: Any, where: str, column: str) -> dict[str, Any]:
    """A JSON object cell (NULL: empty)."""
    doc = json_cell(value, where, column)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValidationFailed(f"{where}: {column} must be a JSON object, not {_kind(doc)}")
    return doc


def bool_cell(value: Any, default: bool, where: str, column: str) -> bool:
    """A boolean stored as a boolean, an integer or text (NULL: ``default``)."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValidationFailed(f"{where}: {column} is not a boolean")


def int_cell(value: Any, where: str, column: str) -> int | None:
    """An integer cell (NULL: None); text holding an integer is read as one."""
    if value is None or isinstance(value, bool):
        return None if value is None else int(value)
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValidationFailed(f"{where}: {column} is not an integer") from None


def time_cell(value: Any, where: str, column: str) -> datetime | None:
    """A timestamp (SQLite gives text); naive values are taken as UTC."""
    if value is None:
        return None
    stamp: datetime
    if isinstance(value, datetime):
        stamp = value
    else:
        try:
            stamp = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ValidationFailed(f"{where}: {column} is not a timestamp") from None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def text_cell(value: Any) -> str | None:
    """A text cell (bytes decoded; other types as their text)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def param_value(value: Any) -> Any:
    """A connection parameter's value stored as text: JSON scalars as such, the rest as text.

    ``'1.0'`` -> 1.0, ``'true'`` -> True, ``'"x"'`` -> ``'x'``, ``'{"a": 1}'`` and ``'eu-west'``
    stay text (the schema has no structured parameter values).
    """
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    text = text_cell(value)
    if text is None:
        return None
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return parsed if isinstance(parsed, str | bool | int | float) else text


def capabilities(cell: Any, where: str, warn: Callable[[str], None]) -> list[str]:
    """A capabilities cell: a JSON list of names, or an object of flags (the true ones, as the
    seed service reads it); names lower case with ``_`` for ``-``; others left out, warned.
    """
    raw = json_cell(cell, where, "capabilities")
    if raw is None:
        return []
    if isinstance(raw, dict):
        raw = [k for k, v in raw.items() if v]
    if not isinstance(raw, list):
        raise ValidationFailed(f"{where}: capabilities must be a JSON list of strings")
    out = []
    for item in raw:
        if isinstance(item, str) and item in _NAMES:  # the usual case: already a name
            out.append(item)
            continue
        text = str(item)
        normal = text.strip().lower().replace("-", "_").replace(" ", "_")
        if not _CAPABILITY.match(normal):
            warn(f"capability {text!r} is not a name; omitted")
            continue
        if normal != text:
            warn(f"capability {text!r} written as {normal!r}")
        else:
            _NAMES.add(normal)
        out.append(normal)
    return out


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else "a scalar"


def legacy_opener(hook: str | None) -> Opener | None:
    """How keys stored encrypted are opened: ``--legacy-decrypt module:function``, else the
    Fernet key(s) in ``GWCONFIG_LEGACY_KEY`` (comma-separated), else None."""
    if hook:
        module_name, _, function_name = hook.partition(":")
        if not module_name or not function_name:
            raise ConfigurationError(
                f"--legacy-decrypt {hook!r}: expected module:function",
                hint="a function taking the stored token (str) and returning the key (str)",
            )
        if os.getcwd() not in sys.path and "" not in sys.path:  # a module next to the repo
            sys.path.append(os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigurationError(f"--legacy-decrypt: cannot import {module_name!r}") from exc
        function = getattr(module, function_name, None)
        if not callable(function):
            raise ConfigurationError(f"--legacy-decrypt: {hook!r} is not a function")
        return function  # type: ignore[no-any-return]
    raw = os.environ.get(LEGACY_KEY_VAR, "").strip()
    if not raw:
        return None
    from cryptography.fernet import Fernet, MultiFernet

    fernets = []
    for i, key in enumerate((k.strip() for k in raw.split(",") if k.strip()), start=1):
        try:
            fernets.append(Fernet(key.encode()))
        except (ValueError, TypeError):
            raise ConfigurationError(
                f"{LEGACY_KEY_VAR}: key #{i} is not a valid Fernet key (32 url-safe base64 bytes)"
            ) from None
    multi = MultiFernet(fernets)

    def open_token(token: str) -> str:
        return multi.decrypt(token.encode()).decode()

    return open_token


def open_key(opener: Opener | None, token: str, where: str) -> str:
    """The plaintext of an encrypted back-office key, or a :class:`SecretError` naming the row."""
    if opener is None:
        raise SecretError(
            f"{where}: the key is stored encrypted and no legacy key was given; nothing was "
            "written",
            hint=f"set {LEGACY_KEY_VAR} to the back-office's Fernet key(s), comma-separated, or "
            "pass --legacy-decrypt module:function",
        )
    try:
        plain = opener(token)
    except Exception:  # a wrong key, a corrupt token, or the hook's own error: never its text
        raise SecretError(
            f"{where}: the encrypted key cannot be opened with the given legacy key(s); nothing "
            "was written",
            hint=f"check {LEGACY_KEY_VAR} (or the --legacy-decrypt hook)",
        ) from None
    if isinstance(plain, bytes):
        plain = plain.decode("utf-8", "replace")
    if not isinstance(plain, str) or not plain:
        raise SecretError(f"{where}: the legacy decryption gave no key; nothing was written")
    return plain


#: ("provider" | "models" | "api_keys" | "param", index) -> the row it was read from
Origins = dict[tuple[str, int], str]


def located(pid: str, origins: Origins, loc: Any, message: str) -> str:
    """A problem at ``loc`` of provider ``pid``'s document, named by its row and field
    (``origins``: the row of the provider, of each model, key and parameter)."""
    if loc[:2] == ("connection", "parameters") and len(loc) > 2:
        where: str | None = origins.get(("param", int(loc[2])))
        rest = loc[3:]
    elif loc[:1] in (("models",), ("api_keys",)) and len(loc) > 1:
        where, rest = origins.get((str(loc[0]), int(loc[1]))), loc[2:]
    else:
        where, rest = origins[("provider", 0)], loc
    column = ".".join(str(part) for part in rest[:8]) + ("..." if len(rest) > 8 else "")
    where = where or origins[("provider", 0)]
    return f"provider {pid!r} ({where}): {column}: {message}"
