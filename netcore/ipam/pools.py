"""Choosing and validating the subnets of a network (moby `defaultipam` + netavark `subnet.rs`).

Pure functions: the caller collects what is in use (other networks' subnets and every route and
address prefix of the daemon's namespace) and passes it in.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Literal

from ..errors import InvalidArgument, PoolExhausted, PoolOverlap
from ..model import IPv4Address, IPv4Network, IPv6Address, IPv6Network, Subnet4, Subnet6

AnyNetwork = IPv4Network | IPv6Network
AnyAddress = IPv4Address | IPv6Address
# What the caller may report as "in use": a prefix (route, subnet), a host address (as its /32 or
# /128) or an interface address (its connected prefix).
InUse = AnyNetwork | AnyAddress | ipaddress.IPv4Interface | ipaddress.IPv6Interface | str

# Docker's default address pools, in Docker's order: each 172.17-31 /16 whole, then 192.168/16
# carved into /20s. 172.16/16 is left out, as Docker does (commonly used by VPNs and hosts).
DEFAULT_POOLS: tuple[tuple[IPv4Network, int], ...] = (
    *((IPv4Network(f"172.{second}.0.0/16"), 16) for second in range(17, 32)),
    (IPv4Network("192.168.0.0/16"), 20),
)

# The smallest prefixes that still hold a gateway plus one address (network and, for v4,
# broadcast are reserved): /30 for IPv4, /126 for IPv6.
_MAX_PREFIXLEN = {4: 30, 6: 126}
_FIELD_EXAMPLE = {4: "10.1.0.0/16", 6: "fd00:1::/64"}


def _as_network(item: InUse) -> AnyNetwork:
    """One in-use item as the prefix it occupies."""
    if isinstance(item, IPv4Network | IPv6Network):
        return item
    if isinstance(item, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return item.network
    if isinstance(item, IPv4Address | IPv6Address):
        return ipaddress.ip_network(item)  # a host address occupies its /32 (/128)
    return ipaddress.ip_network(item, strict=False)


def _ignored(net: AnyNetwork) -> bool:
    """Prefixes that never make a pool prefix unusable: the default route, link-local, loopback."""
    return net.prefixlen == 0 or net.is_link_local or net.is_loopback


def _occupied(in_use: Iterable[InUse], version: int) -> list[AnyNetwork]:
    nets = (_as_network(item) for item in in_use)
    relevant = (n for n in nets if n.version == version and not _ignored(n))
    return sorted(relevant, key=lambda n: int(n.network_address))


def _first_free(base: AnyNetwork, prefixlen: int, taken: list[AnyNetwork]) -> AnyNetwork | None:
    """The first `prefixlen` block of `base` that overlaps nothing in `taken` (sorted by start).

    Jumps past each conflict instead of enumerating blocks, so a large pool of small prefixes
    costs O(len(taken)), not O(blocks).
    """
    size = 1 << (base.max_prefixlen - prefixlen)
    start, end = int(base.network_address), int(base.broadcast_address)
    candidate = start
    for net in taken:
        net_start, net_end = int(net.network_address), int(net.broadcast_address)
        if net_end < candidate:
            continue
        if net_start > candidate + size - 1:
            break  # every later prefix starts even further on: the candidate is free
        # Overlap: the next candidate is the first aligned block after this prefix.
        candidate = start + -(-(net_end + 1 - start) // size) * size
        if candidate > end:
            return None
    if candidate + size - 1 > end:
        return None
    return ipaddress.ip_network((candidate, prefixlen))


def pick_subnet(
    in_use: Iterable[InUse], pools: Iterable[tuple[AnyNetwork, int]] = DEFAULT_POOLS
) -> IPv4Network:
    """The first pool prefix, in pool order, that overlaps nothing in `in_use`.

    `in_use` holds other networks' subnets and the daemon namespace's routes and addresses; a host
    address counts as its /32, the default route and link-local/loopback prefixes are ignored.
    """
    in_use = list(in_use)
    for base, prefixlen in pools:
        if not base.prefixlen <= prefixlen <= base.max_prefixlen:
            raise InvalidArgument(
                f"pool {base} cannot be carved into /{prefixlen}: "
                f"use a size between /{base.prefixlen} and /{base.max_prefixlen}",
                field="pools",
            )
        found = _first_free(base, prefixlen, _occupied(in_use, base.version))
        if found is not None:
            return found
    raise PoolExhausted(
        "every default address pool overlaps an existing network or route: "
        "pass an explicit subnet, or remove unused networks"
    )


def check_overlap(subnet: AnyNetwork, taken: Mapping[str, AnyNetwork]) -> None:
    """Raise PoolOverlap naming the first owner in `taken` whose subnet overlaps `subnet`."""
    for owner, other in taken.items():
        if other.version == subnet.version and subnet.overlaps(other):
            raise PoolOverlap(
                f'subnet {subnet} overlaps network "{owner}" ({other}): choose another subnet'
            )


def _parse_network(text: str, version: int, field: str) -> AnyNetwork:
    example = _FIELD_EXAMPLE[version]
    if not isinstance(text, str) or "/" not in text:
        raise InvalidArgument(f"{text!r} is not in CIDR form: use e.g. {example}", field=field)
    try:
        loose = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise InvalidArgument(
            f"{text!r} is not a valid subnet: use CIDR form, e.g. {example}", field=field
        ) from None
    if loose.version != version:
        raise InvalidArgument(
            f"{text!r} is not an IPv{version} subnet: use e.g. {example}", field=field
        )
    if ipaddress.ip_interface(text.strip()).ip != loose.network_address:
        raise InvalidArgument(
            f"{text!r} has host bits set: use {loose} (the network address)", field=field
        )
    return loose


def _parse_address(text: str, version: int, field: str) -> AnyAddress:
    try:
        address = ipaddress.ip_address(text.strip() if isinstance(text, str) else text)
    except ValueError:
        raise InvalidArgument(
            f"{text!r} is not a valid IPv{version} address (no prefix length)", field=field
        ) from None
    if address.version != version:
        raise InvalidArgument(f"{text!r} is not an IPv{version} address", field=field)
    return address


def _resolve(
    version: Literal[4, 6], subnet: str, ip_range: str | None, gateway: str | None
) -> tuple[AnyNetwork, AnyAddress, AnyNetwork | None]:
    net = _parse_network(subnet, version, "Subnet")
    limit = _MAX_PREFIXLEN[version]
    if net.prefixlen > limit:
        raise InvalidArgument(
            f"{net} is too small to hold a gateway and one address: use /{limit} or shorter",
            field="Subnet",
        )
    range_net = None
    if ip_range is not None:
        range_net = _parse_network(ip_range, version, "IPRange")
        if not range_net.subnet_of(net):
            raise InvalidArgument(
                f"{range_net} is not inside subnet {net}: choose a range within it",
                field="IPRange",
            )
    if gateway is None:
        return net, net[1], range_net
    address = _parse_address(gateway, version, "Gateway")
    if address not in net:
        raise InvalidArgument(
            f"{address} is not inside subnet {net}: use an address such as {net[1]}",
            field="Gateway",
        )
    if address == net.network_address:
        raise InvalidArgument(
            f"{address} is the network address of {net}: use e.g. {net[1]}", field="Gateway"
        )
    if version == 4 and address == net.broadcast_address:
        raise InvalidArgument(
            f"{address} is the broadcast address of {net}: use e.g. {net[1]}", field="Gateway"
        )
    return net, address, range_net


def _refuse_orphans(ip_range: str | None, gateway: str | None) -> None:
    for field, value in (("IPRange", ip_range), ("Gateway", gateway)):
        if value is not None:
            raise InvalidArgument(
                f"{value!r} given without a Subnet: pass the Subnet it belongs to", field=field
            )


def resolve_ipv4(
    subnet: str | None,
    ip_range: str | None,
    gateway: str | None,
    in_use: Iterable[InUse] = (),
) -> Subnet4:
    """Validate an explicit IPv4 config, or (subnet None) pick a free default pool prefix.

    `in_use` only feeds the automatic choice; an explicit subnet's overlap with other networks
    is the caller's `check_overlap` (which can name the owner).
    """
    if subnet is None:
        _refuse_orphans(ip_range, gateway)
        picked = pick_subnet(in_use)
        return Subnet4(subnet=picked, gateway=picked[1])
    net, address, range_net = _resolve(4, subnet, ip_range, gateway)
    return Subnet4(subnet=net, gateway=address, ip_range=range_net)


def resolve_ipv6(
    subnet: str | None,
    ip_range: str | None,
    gateway: str | None,
    in_use: Iterable[InUse] = (),
) -> Subnet6:
    """Validate an explicit IPv6 config. There are no IPv6 pools: the subnet must be given.

    `in_use` is accepted for symmetry with `resolve_ipv4` and not consulted.
    """
    del in_use  # no automatic IPv6 choice, so nothing to avoid
    if subnet is None:
        raise InvalidArgument(
            "an IPv6 subnet must be given explicitly (there are no IPv6 default pools): "
            f"pass e.g. {_FIELD_EXAMPLE[6]}",
            field="Subnet",
        )
    net, address, range_net = _resolve(6, subnet, ip_range, gateway)
    return Subnet6(subnet=net, gateway=address, ip_range=range_net)
