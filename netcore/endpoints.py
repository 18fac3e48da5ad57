"""Planning an endpoint from registry data: interface name, addresses, MAC, gateway role.

No kernel and no writes: the engine commits the plan (with its intent) and then attaches it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from .errors import InvalidArgument
from .intents import Connect
from .ipam.allocator import SubnetAllocator
from .ipam.mac import mac_from_ipv4, validate_mac
from .links import resolve_links
from .model import Endpoint, Network, Sandbox
from .names import new_id
from .registry import Registry
from .requests import ConnectRequest
from .store.base import Put


@dataclass(frozen=True, slots=True)
class EndpointPlan:
    endpoint: Endpoint
    cursors: tuple[Put, ...]  # where serial allocation continues, committed with the endpoint


def plan_endpoint(
    registry: Registry, network: Network, sandbox: Sandbox, req: ConnectRequest
) -> EndpointPlan:
    """The next endpoint of `sandbox` on `network`; raises the IPAM errors."""
    mine = registry.endpoints_of(sandbox.id)
    used_ifnames = {e.ifname for e in mine}
    if req.ifname is not None and req.ifname in used_ifnames:
        raise InvalidArgument(
            f"sandbox {sandbox.name} already has an interface {req.ifname}: choose another name",
            field="ifname",
        )
    ifname = req.ifname or next(
        f"eth{i}" for i in range(len(mine) + 1) if f"eth{i}" not in used_ifnames
    )
    alloc4 = allocator(registry, network, 4)
    ipv4 = alloc4.allocate(_ip(req.ipv4) if req.ipv4 else None)
    cursors = [_cursor(network, 4, alloc4)]
    ipv6 = None
    if network.ipv6 is not None:
        alloc6 = allocator(registry, network, 6)
        ipv6 = alloc6.allocate(_ip(req.ipv6) if req.ipv6 else None)
        cursors.append(_cursor(network, 6, alloc6))
    elif req.ipv6:
        raise InvalidArgument(f"network {network.name} has no IPv6 subnet", field="IPv6Address")
    links = resolve_links(registry, network, sandbox, req.links)
    endpoint_id = new_id()
    return EndpointPlan(
        Endpoint(
            id=endpoint_id,
            network_id=network.id,
            sandbox_id=sandbox.id,
            ifname=ifname,
            host_ifname=f"veth{endpoint_id[:11]}",
            mac=validate_mac(req.mac) if req.mac else mac_from_ipv4(ipv4),
            ipv4=ipv4,  # type: ignore[arg-type]
            ipv6=ipv6,  # type: ignore[arg-type]
            aliases=tuple(dict.fromkeys(req.aliases)),
            # The first non-internal network gives the default route (internal: no way out).
            is_gateway=not network.internal and not any(e.is_gateway for e in mine),
            links=links,
        ),
        tuple(c for c in cursors if c is not None),
    )


def allocator(registry: Registry, network: Network, version: int) -> SubnetAllocator:
    """The allocator of one side of a network, rebuilt from committed endpoints and those of
    connects in flight (their intents), so no address is ever handed out twice."""
    field = "ipv4" if version == 4 else "ipv6"
    side = network.ipv4 if version == 4 else network.ipv6
    assert side is not None
    used = [getattr(e, field) for e in registry.endpoints_on(network.id)]
    for intent in registry.intents.values():
        if isinstance(intent, Connect) and intent.endpoint.network_id == network.id:
            used.append(getattr(intent.endpoint, field))
    # Addresses other hosts claimed on an overlay, whose endpoints may not be published yet.
    for claim in registry.remote_claims:
        network_id, _, address = claim.partition("/")
        if network_id == network.id and _ip(address).version == version:
            used.append(_ip(address))
    cursor = registry.meta.get(_cursor_key(network, version), {}).get("value")
    return SubnetAllocator(
        side.subnet,
        side.gateway,
        side.ip_range,
        allocated=[a for a in used if a is not None],
        cursor=_ip(cursor) if cursor else None,
    )


def gateway_successor(registry: Registry, sandbox: Sandbox, leaving: Endpoint) -> Endpoint | None:
    """The endpoint that takes over the default route when the gateway endpoint leaves."""
    if not leaving.is_gateway:
        return None
    for other in registry.endpoints_of(sandbox.id):
        if other.id != leaving.id and not registry.networks[other.network_id].internal:
            return replace(other, is_gateway=True)
    return None


def _cursor(network: Network, version: int, alloc: SubnetAllocator) -> Put | None:
    # Serial allocation continues after the last address handed out, across restarts; a
    # requested address does not move it (the allocator's own rule).
    if alloc.cursor is None:
        return None
    return Put("meta", _cursor_key(network, version), {"value": str(alloc.cursor)})


def _cursor_key(network: Network, version: int) -> str:
    return f"cursor{version}:{network.id}"


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(value)
