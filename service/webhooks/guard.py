"""The SSRF guard: which webhook URLs may be called, and the address to call.

A URL is refused when any address its host resolves to is loopback, private, link-local (cloud
metadata), shared (CGNAT), multicast, reserved or unspecified, unless the host or the address is in
`ABSTRACTOR_WEBHOOK_ALLOW_HOSTS`. An IPv6 address that carries an IPv4 address inside it is judged
by that IPv4 address too, since a gateway on the way may turn it into one: IPv4-mapped
(`::ffff:a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64
(`64:ff9b::/96`; the local-use `64:ff9b:1::/48` is refused whole), 6to4 (`2002::/16`) and Teredo
(`2001::/32`, server and client). The check runs at submission (HTTP 422 `webhook_url_refused`) and
again before every attempt; the request then goes to the address just checked (the Host header and
TLS SNI keep the name), so a DNS answer that changes in between (rebinding) cannot redirect it.
Redirects are never followed and proxies from the environment are ignored.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from service.errors import ServiceError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
"""(host, port) -> IP address strings; `socket.getaddrinfo` by default, replaceable in tests."""

_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 IPv4-translated
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291 IPv4-compatible (deprecated)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215 local use: never a public destination
_LOW32 = 0xFFFFFFFF


class WebhookUrlRefused(ServiceError):
    """The URL is not one we may call: bad scheme, credentials in it, unresolvable, or a non-public address."""

    code = "webhook_url_refused"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, details={"reason": reason})
        self.reason = reason


@dataclass(frozen=True)
class WebhookTarget:
    """A checked URL: where to connect (`address`) and what name to present (`host`, Host header, SNI)."""

    url: httpx.URL
    host: str
    port: int
    address: IPAddress


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, translated, compatible, NAT64, 6to4, Teredo)."""
    low = ipaddress.IPv4Address(int(address) & _LOW32)
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address in _TRANSLATED or address in _COMPATIBLE or address in _NAT64:
        return [low]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        server, client = address.teredo
        return [server, client]
    return []


def is_public_address(address: IPAddress) -> bool:
    """Whether a webhook may go to this address without allow-listing: globally routable unicast only."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return False
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket
            return is_public_address(address.ipv4_mapped)
        if not all(is_public_address(v4) for v4 in embedded_ipv4(address)):
            return False
    # is_global is False for loopback, RFC 1918, link-local (169.254.169.254 metadata), CGNAT 100.64/10
    # (Alibaba's 100.100.100.200), ULA fc00::/7 (AWS's fd00:ec2::254), unspecified and reserved ranges.
    return address.is_global and not address.is_multicast


def _default_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _parse_allow(allow: Sequence[str]) -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    names: set[str] = set()
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for entry in allow:
        entry = entry.strip().lower().rstrip(".")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry)
    return names, networks


def check_webhook_url(url: str, allow: Sequence[str] = (), *, resolve: Resolver | None = None) -> WebhookTarget:
    """The target to POST to, or `WebhookUrlRefused`: every resolved address must be public or allow-listed."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as e:
        raise WebhookUrlRefused("the webhook URL is not a valid URL", reason="invalid") from e
    if parsed.scheme not in ("http", "https"):
        raise WebhookUrlRefused("a webhook URL must be http or https", reason="scheme")
    if parsed.userinfo:
        raise WebhookUrlRefused("a webhook URL must not carry credentials", reason="credentials")
    host = parsed.host.lower().rstrip(".")
    if not host:
        raise WebhookUrlRefused("the webhook URL has no host", reason="invalid")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    names, networks = _parse_allow(allow)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        raw = [str(literal)]
    else:
        try:
            raw = (resolve or _default_resolver)(host, port)
        except (OSError, UnicodeError) as e:
            raise WebhookUrlRefused("the webhook host does not resolve", reason="unresolvable") from e
    addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in raw]
    if not addresses:
        raise WebhookUrlRefused("the webhook host does not resolve", reason="unresolvable")
    if host not in names:
        for address in addresses:
            if not is_public_address(address) and not any(address in n for n in networks):
                raise WebhookUrlRefused(
                    "the webhook URL resolves to a loopback, private, link-local or otherwise non-public address",
                    reason="non_public_address",
                )
    return WebhookTarget(url=parsed, host=host, port=port, address=addresses[0])
