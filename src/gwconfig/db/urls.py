"""Database URLs in one place: SQLAlchemy's grammar, checked, masked and scrubbed.

A URL can carry a password in two places: the userinfo (``user:PASSWORD@host``) and the query
string (``?password=...``, ``&sslpassword=...``, any key that names a secret, in any case and
percent-encoded or not). :func:`mask_url` hides both wherever a URL is printed;
:func:`scrub` removes them from any other text (a driver's error message may echo the DSN);
:func:`check_url` turns a malformed URL into a :class:`ConfigurationError` that names none of
it. Pure ``re`` and ``urllib``: the plan path reads URLs without importing SQLAlchemy.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, unquote_plus

from gwconfig.errors import ConfigurationError

__all__ = ["MASK", "URL_GRAMMAR", "check_url", "error_detail", "mask_url", "scrub", "secrets_of"]

MASK = "***"

# SQLAlchemy's own URL grammar (sqlalchemy.engine.url._parse_url), so both read a URL alike
URL_GRAMMAR = re.compile(
    r"""
    (?P<name>[\w\+]+)://
    (?:
        (?P<username>[^:/]*)
        (?::(?P<password>[^@]*))?
    @)?
    (?:
        (?:
            \[(?P<ipv6host>[^/\?]+)\] |
            (?P<ipv4host>[^/:\?]+)
        )?
        (?::(?P<port>[^/\?]*))?
    )?
    (?:/(?P<database>[^\?]*))?
    (?:\?(?P<query>.*))?
    """,
    re.X,
)

# The userinfo password as SQLAlchemy reads it (up to the first '@'), and, for a password with
# an unencoded '@' that SQLAlchemy would cut short, every further '@'-ended piece of the host.
_USERINFO = re.compile(r"^(?P<head>[^:/?#\s]+://[^:/]*:)(?P<pw>[^@]*@(?:[^/?@]*@)*)")

#: query keys whose values are secrets: password, passwd, pwd, sslpassword, secret, token, ...
_SECRET_KEY = re.compile(r"pass|pwd|secret|token|key|auth|cred", re.IGNORECASE)

#: scheme (before any ``+driver``) -> dialect, for the databases gwconfig supports
BACKENDS = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mariadb",
}

_SHAPE_HINT = (
    "use sqlite:///path.db, postgresql+psycopg://user:password@host:5432/db or "
    "mysql+pymysql://user:password@host:3306/db; write '@', ':', '/' and '?' in a user name "
    "or password as %40, %3A, %2F and %3F"
)

#: secrets shorter than this are masked in URLs but not searched for in free text
_MIN_SCRUB = 4


def _query_start(url: str) -> int:
    """Where the query string begins (after a masked or unmasked userinfo), or -1."""
    m = _USERINFO.match(url)
    return url.find("?", m.end() if m else 0)


def _secret_pairs(query: str) -> list[tuple[int, int]]:
    """(start, end) offsets in ``query`` of the values whose key names a secret."""
    spans = []
    offset = 0
    for piece in query.split("&"):
        key, eq, _ = piece.partition("=")
        if eq and _SECRET_KEY.search(unquote_plus(key)):
            spans.append((offset + len(key) + 1, offset + len(piece)))
        offset += len(piece) + 1
    return spans


def mask_url(url: str) -> str:
    """``url`` with its passwords (userinfo and secret query values) replaced by ``***``.

    Safe on any text: something that is not ``scheme://...`` is not shown at all.
    """
    if "://" not in url:
        return "(not a URL)"
    m = _USERINFO.match(url)
    if m:
        url = f"{m['head']}{MASK}@{url[m.end() :]}"
    q = _query_start(url)
    if q < 0:
        return url
    query = url[q + 1 :]
    for start, end in reversed(_secret_pairs(query)):
        query = query[:start] + MASK + query[end:]
    return url[: q + 1] + query


def secrets_of(url: str) -> list[str]:
    """Every secret ``url`` carries, raw and decoded (longest first), for :func:`scrub`."""
    found: set[str] = set()
    m = _USERINFO.match(url)
    if m:
        raw = m["pw"][:-1]  # without the final '@'
        found.update({raw, unquote(raw), *raw.split("@")})
    q = _query_start(url)
    if q >= 0:
        query = url[q + 1 :]
        for start, end in _secret_pairs(query):
            raw = query[start:end]
            found.update({raw, unquote_plus(raw), unquote(raw)})
    return sorted((s for s in found if len(s) >= _MIN_SCRUB), key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's message, say) with every secret of ``url`` replaced by ``***``."""
    for secret in secrets_of(url):
        text = text.replace(secret, MASK)
    return text


def error_detail(exc: BaseException, url: str) -> str:
    """The first line of a driver error, scrubbed of ``url``'s secrets (for messages)."""
    text = str(exc).strip()
    return scrub(text.splitlines()[0], url) if text else type(exc).__name__


def _invalid(url: str, problem: str) -> ConfigurationError:
    shown = f" {mask_url(url)}" if "://" in url else ""
    return ConfigurationError(f"invalid database URL{shown}: {problem}", hint=_SHAPE_HINT)


def check_url(url: str) -> str:
    """``url`` if it is a well-formed URL of a supported database, else ConfigurationError.

    The error shows the URL masked (or not at all) and never quotes a part of it that could
    hold a piece of a password (a port or host after an unencoded '@' in the password).
    """
    m = URL_GRAMMAR.match(url)
    if m is None or m.end() != len(url):
        raise _invalid(url, "not of the form dialect+driver://user:password@host:port/database")
    backend = m["name"].split("+", 1)[0].lower()
    if backend not in BACKENDS:
        raise ConfigurationError(
            f"unsupported database {backend!r} in {mask_url(url)}",
            hint="gwconfig supports SQLite, PostgreSQL and MySQL/MariaDB",
        )
    host = m["ipv4host"]
    if host is not None and "@" in host:
        raise _invalid(url, "the host part contains '@' (write '@' in a password as %40)")
    if host is not None and re.search(r"[\[\]\s]", host):
        raise _invalid(url, "the host is malformed (write an IPv6 address as [::1])")
    port = m["port"]
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise _invalid(url, "the port is not a number from 1 to 65535")
    if backend == "sqlite" and (m["username"] is not None or host or port or m["ipv6host"]):
        raise _invalid(url, "a SQLite URL names a file (sqlite:///path.db), not a user or host")
    return url
