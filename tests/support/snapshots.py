"""Registry snapshots for the DNS tests, built from a few numbers: addresses are host numbers in
the network's subnet, the gateway is the first one, and a sandbox's namespace is ours."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network
from typing import Any

from netcore.model import Endpoint, Network, Sandbox, Snapshot, Subnet4, Subnet6


def network(
    net_id: str, name: str, bridge: str, subnet: str, *, v6: str | None = None, **fields: Any
) -> Network:
    """A network on `subnet` (and `v6`), gateways at host 1; `fields` as in `Network`."""
    net4 = IPv4Network(subnet)
    net6 = IPv6Network(v6) if v6 else None
    return Network(
        id=net_id,
        name=name,
        bridge=bridge,
        ipv4=Subnet4(net4, net4.network_address + 1),
        ipv6=Subnet6(net6, net6.network_address + 1) if net6 else None,
        **fields,
    )


def sandbox(sandbox_id: str, name: str, *, netns_path: str = "/x", **fields: Any) -> Sandbox:
    """A sandbox in a namespace the daemon owns; `fields` as in `Sandbox`."""
    return Sandbox(id=sandbox_id, name=name, netns_path=netns_path, owned=True, **fields)


def endpoint(
    endpoint_id: str,
    net: Network,
    sandbox_id: str,
    host: int,
    *,
    v6_host: int | None = None,
    ifname: str = "eth0",
    host_ifname: str = "veth0",
    mac: str = "02:00:00:00:00:01",
    aliases: Iterable[str] = (),
) -> Endpoint:
    """`sandbox_id` on `net` at host number `host` (and `v6_host` if the network has IPv6)."""
    v6 = net.ipv6.subnet.network_address + v6_host if net.ipv6 and v6_host is not None else None
    return Endpoint(
        id=endpoint_id,
        network_id=net.id,
        sandbox_id=sandbox_id,
        ifname=ifname,
        host_ifname=host_ifname,
        mac=mac,
        ipv4=net.ipv4.subnet.network_address + host,
        ipv6=v6,
        aliases=tuple(aliases),
    )


def snapshot(
    networks: Iterable[Network],
    sandboxes: Iterable[Sandbox],
    endpoints: Iterable[Endpoint],
    revision: int = 1,
) -> Snapshot:
    return Snapshot(revision, tuple(networks), tuple(sandboxes), tuple(endpoints))
