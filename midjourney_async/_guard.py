"""Which addresses a download may reach: the public internet, the base URL's
origin, and what the user allowed.

Image links come from the server, so a hostile or compromised relay could
point them at the user's own network (a router page, a cloud metadata service
on 169.254.169.254) and have the library save the answer to disk. Downloads
therefore refuse loopback, link-local, private and other non-public addresses,
for every redirect hop and for the address a host name resolves to, unless
the hop is on the base URL's origin or the user listed the host or network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ._errors import ConfigurationError

__all__ = ["AddressGuard", "RefusedAddress"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class RefusedAddress(OSError):
    """Raised from name resolution for a host whose address a download may not reach."""


def _address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class AddressGuard:
    """The download address policy.

    ``allow`` holds host names (matched exactly, case-insensitive) and IP
    networks or addresses (``"10.0.0.0/8"``, ``"fd00::/8"``, ``"192.168.1.7"``).
    ``base`` is the base URL's ``(host, port)``, always allowed.
    """

    def __init__(self, allow: Iterable[str], base: tuple[str, int | None] = ("", None)) -> None:
        self.hosts: set[str] = set()
        self.networks: list[IPNetwork] = []
        self.base = (base[0].lower(), base[1])
        self.allow(allow)

    def allow(self, entries: Iterable[str]) -> None:
        """Add host names or networks to what downloads may reach."""
        if isinstance(entries, str):
            entries = [entries]
        for item in entries:
            text = item.strip().lower()
            if not text:
                continue
            try:
                self.networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
            except ValueError:
                if "/" in text or ":" in text or " " in text:
                    raise ConfigurationError(
                        f"download_allow entry {item!r} is neither a host name nor a network"
                    ) from None
                self.hosts.add(text.rstrip("."))

    def allowed_address(self, address: IPAddress) -> bool:
        """Whether a download may connect to ``address``."""
        if address.is_global and not address.is_multicast:
            return True
        return any(address in network for network in self.networks)

    def host_refusal(self, host: str, port: int | None, addresses: Iterable[str]) -> str | None:
        """Why ``host`` (resolved to ``addresses``) is refused, or None when it is allowed."""
        name = host.lower().rstrip(".")
        if name in self.hosts or (name, port) == self.base:
            return None
        for text in addresses:
            address = _address(text)
            if address is None or not self.allowed_address(address):
                return (
                    f"refusing to download from {host}: it resolves to {text}, a loopback, "
                    "link-local or private address; list the host or its network in "
                    "download_allow if your relay keeps images there"
                )
        return None

    def literal_refusal(self, host: str) -> str | None:
        """Why an IP-literal ``host`` is refused; None for names (the resolver checks them)."""
        address = _address(host)
        if address is None:
            return None
        return self.host_refusal(host, None, [host])
