"""Outbound webhooks to partners' callback URLs, without letting a URL point the bank at its own network.

Every delivery resolves the URL's host again and refuses it when any address it resolves to is private,
loopback, link-local, multicast, reserved or unspecified (IPv4-mapped IPv6 included); ``allow_loopback``
lets the sandbox reach its emulator on 127.0.0.1. The request then goes to the address that was checked
(the ``Host`` header and, for https, the TLS server name stay the URL's host, so the certificate is still
checked for it): a DNS answer that changes between the check and the connection cannot redirect it.
Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

import httpx


class AddressRefused(Exception):
    """The callback URL resolves to an address the bank must not call."""


class DeliveryFailed(Exception):
    """No answer (connection refused, timeout, TLS failure)."""


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return not allow_loopback
    return (address.is_private or address.is_link_local or address.is_multicast or address.is_reserved
            or address.is_unspecified)


class WebhookSender:
    def __init__(self, http: httpx.AsyncClient, *, allow_loopback: bool) -> None:
        self._http = http
        self._allow_loopback = allow_loopback

    async def resolve(self, host: str, port: int) -> str:
        """The address to connect to: every address ``host`` resolves to must be allowed."""
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
            addresses = [literal]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise DeliveryFailed(f"cannot resolve {host}: {exc}") from exc
            addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
        if not addresses:
            raise DeliveryFailed(f"{host} resolves to nothing")
        bad = [str(a) for a in addresses if _refused(a, self._allow_loopback)]
        if bad:
            raise AddressRefused(f"{host} resolves to {', '.join(bad)}")
        return str(addresses[0])

    async def post(self, url: str, *, headers: dict[str, str], body: bytes) -> int:
        """POST ``body`` to ``url``; the HTTP status (any), or ``DeliveryFailed`` / ``AddressRefused``."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AddressRefused(f"not an http(s) URL: {url}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = await self.resolve(parts.hostname, port)
        shown = f"[{address}]" if ":" in address else address
        target = urlunsplit((parts.scheme, f"{shown}:{port}", parts.path or "/", parts.query, ""))
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
        try:
            resp = await self._http.post(target, content=body, headers={**headers, "Host": host,
                                                                         "Content-Type": "application/json"},
                                         extensions=extensions, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
        return resp.status_code
