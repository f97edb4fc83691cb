"""The origin a stored secret is bound to: ``scheme://host:port`` of its provider's API.

A stored API key or sensitive connection parameter records the origin its provider had when the
secret was written by ``apply`` or an ``admin`` token (columns ``api_keys.origin`` and
``connection_parameters.origin``). The runtime sends a secret only to that origin: an ``api_base``
changed afterwards through the REST API or the seed service (by a ``write`` token) cannot make a
secret readable elsewhere (see docs/secrets.md, "Threat model"). NULL (rows stored before
revision 0008) means "bound to the provider's current origin" until the next apply records it.

A provider without ``api_base`` talks to its type's default base URL (:data:`DEFAULT_BASES`, also
what the built-in provider classes use); a type with none (a plugin, ``azure_openai``, ``mock``)
has the origin ``default:<provider_type>``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

#: the base URL a provider type uses when ``connection.api_base`` is not set
DEFAULT_BASES: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}
_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """``scheme://host:port`` of ``url`` (lower case, default port written out)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = _PORTS.get(scheme, 0)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def provider_origin(provider_type: str, api_base: str | None) -> str:
    """The origin a provider of ``provider_type`` with ``api_base`` sends its requests to."""
    if api_base:
        return origin_of(api_base)
    default = DEFAULT_BASES.get(provider_type)
    return origin_of(default) if default else f"default:{provider_type}"


def connection_origin(provider_type: str, connection: object) -> str:
    """:func:`provider_origin` of a canonical ``connection`` dict (or None: no api_base)."""
    api_base = connection.get("api_base") if isinstance(connection, dict) else None
    return provider_origin(provider_type, api_base if isinstance(api_base, str) else None)


def mismatch_message(provider_id: str, what: str, bound: str, current: str) -> str:
    """The refusal of a secret bound to ``bound`` while the provider now points at ``current``
    (it says how to bind it again; never the secret)."""
    return (
        f"provider '{provider_id}': {what} is bound to origin {bound}, but the provider's "
        f"api_base now points at {current}; it is not sent there until it is written again for "
        "that origin (gwconfig apply from the manifests, or the REST API with an admin token)"
    )
