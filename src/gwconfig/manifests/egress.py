"""Where a provider's ``api_base`` may point: the egress policy and the rules that always hold.

One function, :func:`api_base_refusal`, decides for every writer of an ``api_base``: ``validate``
(and so ``plan`` and ``apply``, which compile), the REST API and the seed service. Always, whether
or not the ``Gateway`` manifest has an ``egress`` policy:

* the scheme is ``http`` or ``https``, the URL has a host and no ``user:password@``;
* link-local addresses (``169.254.0.0/16``, ``fe80::/10``) and cloud metadata endpoints
  (:data:`METADATA_HOSTS`) are refused unless the policy lists them *explicitly*: the host itself,
  or a network inside those ranges (``0.0.0.0/0`` or ``*.internal`` do not count).

With a policy (``egress: {allow: [...]}``) the host must also match one of its entries: a host
name (exact, case-insensitive), ``*.suffix`` (any name ending in ``.suffix``), an IP address or a
CIDR network. Names are compared as written, never resolved. IPv4 addresses written the legacy
ways (``2852039166``, ``0xa9.0xfe.0xa9.0xfe``) and IPv4-mapped IPv6 addresses are compared as
the address they reach. No I/O; the standard library only.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: link-local ranges: refused unless listed explicitly
LINK_LOCAL: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
)
#: cloud metadata endpoints (AWS, GCP, Azure, Alibaba, AWS IPv6, Oracle): refused unless listed
METADATA_HOSTS = frozenset({
    "169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254", "192.0.0.192",
    "metadata.google.internal", "metadata.goog", "metadata", "instance-data",
    "instance-data.ec2.internal",
})  # fmt: skip
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
#: a DNS name is at most 253 characters (this also bounds a stored key origin)
MAX_HOST = 253


def normal_host(host: str) -> str:
    """``host`` lower-cased, without brackets or a trailing dot."""
    return host.strip("[]").rstrip(".").lower()


def host_address(host: str) -> IPAddress | None:
    """The IP address ``host`` names (legacy IPv4 forms and IPv4-mapped IPv6 included), or None."""
    host = normal_host(host)
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        if not re.fullmatch(r"[0-9a-fx.]+", host) or not any(c.isdigit() for c in host):
            return None
        try:  # what the resolver accepts as IPv4: 2852039166, 0xa9fea9fe, 169.254.43518
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _valid_name(name: str) -> bool:
    return 0 < len(name) <= MAX_HOST and all(_LABEL.match(part) for part in name.split("."))


def entry_problem(entry: str) -> str | None:
    """Why ``entry`` is not a valid ``egress.allow`` entry, or None."""
    text = entry.strip().lower()
    if not text or text != entry.lower():
        return f"{entry!r} is not a host name, *.suffix, IP address or CIDR (no blanks)"
    if "/" in text:
        try:
            ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            return f"{entry!r} is not a valid CIDR network: {exc}"
        return None
    if text.startswith("*."):
        if _valid_name(text[2:]) and "*" not in text[2:]:
            return None
        return f"{entry!r}: a wildcard is '*.' followed by a host name suffix"
    if host_address(text) is not None or _valid_name(text.strip("[]")):
        return None
    return f"{entry!r} is not a host name, *.suffix, IP address or CIDR"


def checked_entry(entry: str) -> str:
    """``entry`` in the form a policy keeps (lower case); ValueError when it is not valid."""
    problem = entry_problem(entry)
    if problem is not None:
        raise ValueError(problem)
    return entry.lower()


@dataclass(frozen=True)
class EgressPolicy:
    """The hosts ``api_base`` may name (validated ``egress.allow`` entries)."""

    allow: tuple[str, ...]

    @classmethod
    def from_config(cls, gateway: Any) -> EgressPolicy | None:
        """The policy of a canonical ``gateway`` section (None when it has none)."""
        egress = (gateway or {}).get("egress") if isinstance(gateway, dict) else None
        if not isinstance(egress, dict):
            return None
        return cls(tuple(str(e) for e in egress.get("allow") or ()))

    def _entries(self) -> Iterable[tuple[str, IPNetwork | None]]:
        for entry in self.allow:
            text = entry.lower()
            if "/" in text:
                try:
                    yield text, ipaddress.ip_network(text, strict=False)
                except ValueError:
                    continue
            else:
                ip = host_address(text)
                yield normal_host(text), ipaddress.ip_network(ip) if ip is not None else None

    def allows(self, host: str, ip: IPAddress | None) -> bool:
        """True when an entry matches ``host`` (its address ``ip``, when it is one)."""
        for text, net in self._entries():
            if net is not None:
                if ip is not None and ip in net:
                    return True
            elif text.startswith("*."):
                if host.endswith(text[1:]):
                    return True
            elif text == host:
                return True
        return False

    def lists_explicitly(self, host: str, ip: IPAddress | None) -> bool:
        """True when the policy names ``host`` itself, or a network inside a link-local range
        that holds it (what lifts the always-on refusal)."""
        for text, net in self._entries():
            if net is None:
                if text == host:
                    return True
            elif ip is not None and ip in net and _narrow(net):
                return True
        return False


def _narrow(net: IPNetwork) -> bool:
    """True for one address, or a network inside a link-local range (an explicit listing)."""
    return net.num_addresses == 1 or any(
        net.subnet_of(r)  # type: ignore[arg-type]
        for r in LINK_LOCAL
        if r.version == net.version
    )


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    return parts


def api_base_refusal(url: str, policy: EgressPolicy | None) -> str | None:
    """Why ``url`` may not be a provider's ``api_base`` under ``policy``, or None when it may."""
    parts = _split(url)
    if parts is None or parts.scheme.lower() not in ("http", "https"):
        return f"{url!r} is not an http(s) URL"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "the URL holds credentials (user:password@); put them in an API key or a secret"
    raw_host = parts.hostname or ""
    host = normal_host(raw_host)
    if not host:
        return f"{url!r} has no host"
    if len(host) > MAX_HOST:
        return f"the host is longer than {MAX_HOST} characters"
    ip = host_address(host)
    special = host in METADATA_HOSTS or (ip is not None and (
        str(ip) in METADATA_HOSTS or any(ip in r for r in LINK_LOCAL)
    ))  # fmt: skip
    if special and (policy is None or not policy.lists_explicitly(host, ip)):
        what = "a cloud metadata endpoint" if host in METADATA_HOSTS or (
            ip is not None and str(ip) in METADATA_HOSTS
        ) else "a link-local address"  # fmt: skip
        return (
            f"{host} is {what}; such hosts are refused unless the Gateway's egress.allow lists "
            "them explicitly"
        )
    if policy is not None and not policy.allows(host, ip):
        return f"{host} is not allowed by the Gateway's egress policy (egress.allow)"
    return None
