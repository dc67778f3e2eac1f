"""Which peers are trusted to speak for someone else: proxies sending ``X-Forwarded-*`` or
``Forwarded`` headers, load balancers sending a PROXY protocol header.

A list of entries, each one of:

- an address (``127.0.0.1``, ``::1``), which trusts that host;
- a network in CIDR form (``10.0.0.0/8``, ``fd00::/8``);
- ``unix``, which trusts every peer of a unix socket bind (only local processes can connect
  there, and the socket file's mode says which);
- ``*``, which trusts every peer.

Pure: no I/O. A bad entry is a ``ValueError`` with the entry in its message, so the
configuration check can show it in one line.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: How a unix socket peer is named in a trust list.
UNIX = "unix"


@dataclass(frozen=True, slots=True)
class TrustedPeers:
    """A parsed trust list; ``trusts(host)`` answers for one peer."""

    everyone: bool = False
    unix: bool = False
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedPeers:
        everyone = unix = False
        networks: list[Network] = []
        for raw in entries:
            for part in raw.split(","):
                entry = part.strip()
                if not entry:
                    continue
                if entry == "*":
                    everyone = True
                elif entry.lower() == UNIX:
                    unix = True
                else:
                    try:
                        networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                    except ValueError:
                        raise ValueError(
                            f"{entry!r} is not an address, a network (CIDR), 'unix' or '*'"
                        ) from None
        return cls(everyone, unix, tuple(networks))

    def trusts(self, host: str | None) -> bool:
        """Whether the peer ``host`` is trusted. ``None`` (or an empty string) is a unix
        socket peer, which has no address."""
        if self.everyone:
            return True
        if not host:
            return self.unix
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False
        candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            # A dual-stack socket names IPv4 peers ::ffff:a.b.c.d: trust them as a.b.c.d too.
            candidates.append(address.ipv4_mapped)
        return any(a in network for a in candidates for network in self.networks)

    @property
    def empty(self) -> bool:
        return not (self.everyone or self.unix or self.networks)
