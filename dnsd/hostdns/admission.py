"""Who may ask a host listener: the host, not the sandboxes.

A host listener answers every network's names (it asks as the host). A gateway address is
reachable from the sandboxes of its network, and any host address from any sandbox with a
route out, so without a check a sandbox could learn the names and addresses of networks it is
not on: the scoping its own 127.0.0.11 keeps. `SandboxSources` tells the two apart by source
address: inside a network's subnet, and not the host's own gateway there, is a sandbox
(of this host or, on an overlay, of another). Those get REFUSED (UDP) or a closed
connection (TCP); they have their own resolver.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from netcore.model import Snapshot

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class SandboxSources:
    subnets: tuple[IPNetwork, ...] = ()
    gateways: frozenset[IPAddress] = field(default_factory=frozenset)

    @classmethod
    def of(cls, snapshot: Snapshot) -> SandboxSources:
        """The subnets and gateways of every network the registry knows."""
        subnets: list[IPNetwork] = []
        gateways: set[IPAddress] = set()
        for network in snapshot.networks:
            for sub in (network.ipv4, network.ipv6):
                if sub is not None:
                    subnets.append(sub.subnet)
                    gateways.add(sub.gateway)
        return cls(tuple(dict.fromkeys(subnets)), frozenset(gateways))

    def admits(self, source: str) -> bool:
        """Whether a query from `source` (as the socket gave it) is the host's to ask."""
        try:
            ip = ipaddress.ip_address(source.partition("%")[0])  # fe80::1%br-x
        except ValueError:
            return False
        if ip in self.gateways:
            return True
        return not any(ip in subnet for subnet in self.subnets if subnet.version == ip.version)
