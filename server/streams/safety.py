"""A URL the server fetches is a way into the server's network: only listed schemes, and
no loopback, private, link-local, multicast or unspecified address unless allowed."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from media.live import SCHEMES

from ..engine.errors import BadRequest

STREAM_SCHEMES = tuple(s for s in SCHEMES if s != "file")
HOOK_SCHEMES = ("http", "https")


def redact(url: str) -> str:
    """The URL without its password (what status and logs show)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def _private(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast
            or ip.is_unspecified or ip.is_reserved)  # fmt: skip


def check_url(url: str, allow_private: bool, schemes: tuple[str, ...] = STREAM_SCHEMES,
              what: str = "url") -> None:  # fmt: skip
    """Raise BadRequest (422) naming why `url` may not be fetched."""
    if len(url) > 2048:
        raise BadRequest(f"{what} is longer than 2048 characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    allowed = (*schemes, "file") if allow_private and schemes is STREAM_SCHEMES else schemes
    if scheme not in allowed:
        raise BadRequest(f"{what}: the scheme {scheme or '(none)'!r} is not one of "
                         f"{', '.join(allowed)}")  # fmt: skip
    if scheme == "file":
        return  # only with ALT_STREAMS_ALLOW_PRIVATE: files of this machine
    host = parts.hostname
    if not host:
        raise BadRequest(f"{what} names no host")
    if allow_private:
        return
    try:
        port = parts.port
    except ValueError:
        raise BadRequest(f"{what} has an invalid port") from None
    try:
        found = {info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
    except (socket.gaierror, UnicodeError):
        raise BadRequest(f"{what}: the host {host!r} does not resolve") from None
    for address in found:
        ip = ipaddress.ip_address(str(address).split("%", 1)[0])
        if _private(ip):
            raise BadRequest(
                f"{what}: {host!r} resolves to {ip}, a loopback, private, link-local or "
                "multicast address; set ALT_STREAMS_ALLOW_PRIVATE=1 to watch sources on the "
                "server's own network"
            )
