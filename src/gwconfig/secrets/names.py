"""Which names carry credentials: the one rule for headers and connection parameters.

The runtime's scrubber treats the values of such headers as secrets; the manifest schema
refuses them as literals (a credential header is a secret reference, stored encrypted like a
key); ``gwconfig import`` warns about a connection parameter so named but not sensitive.
"""

from __future__ import annotations

import re

#: names of headers (and parameters) whose values are credentials
_CREDENTIAL = re.compile(r"auth|key|token|secret|cookie|signature|passw", re.IGNORECASE)
#: a secret header is stored as the sensitive connection parameter ``header:NAME``
HEADER_PARAM_PREFIX = "header:"


def sensitive_header(name: str) -> bool:
    """True when a header (or parameter) of that name carries credentials."""
    return _CREDENTIAL.search(name) is not None


def header_param(name: str) -> str:
    """The connection parameter name a secret header ``name`` is stored under."""
    return HEADER_PARAM_PREFIX + name


def param_header(param_name: str) -> str | None:
    """The header a ``header:NAME`` parameter stands for, or ``None`` for other parameters."""
    if param_name.startswith(HEADER_PARAM_PREFIX):
        return param_name[len(HEADER_PARAM_PREFIX) :]
    return None
