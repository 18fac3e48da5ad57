"""Default pool choice, explicit subnet/range/gateway validation, overlap messages."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv6Address, ip_network

import pytest

from netcore.errors import ErrorKind, InvalidArgument, PoolExhausted, PoolOverlap
from netcore.ipam.pools import (
    DEFAULT_POOLS,
    check_overlap,
    pick_subnet,
    resolve_ipv4,
    resolve_ipv6,
)
from netcore.model import Subnet4, Subnet6

ALL_SIXTEENS = [ip_network(f"172.{n}.0.0/16") for n in range(17, 32)]


def test_default_pools_are_dockers_in_order() -> None:
    assert DEFAULT_POOLS[0] == (ip_network("172.17.0.0/16"), 16)
    assert DEFAULT_POOLS[14] == (ip_network("172.31.0.0/16"), 16)
    assert DEFAULT_POOLS[-1] == (ip_network("192.168.0.0/16"), 20)
    assert len(DEFAULT_POOLS) == 16


# --- automatic choice ---


def test_first_choice_is_172_17() -> None:
    assert pick_subnet([]) == ip_network("172.17.0.0/16")


def test_skips_a_subnet_in_use() -> None:
    assert pick_subnet([ip_network("172.17.0.0/16")]) == ip_network("172.18.0.0/16")


def test_skips_a_pool_prefix_that_a_host_route_overlaps() -> None:
    in_use = [ip_network("172.17.0.0/16"), ip_network("172.18.5.0/24")]
    assert pick_subnet(in_use) == ip_network("172.19.0.0/16")


def test_a_wider_route_covers_several_candidates() -> None:
    assert pick_subnet([ip_network("172.16.0.0/14")]) == ip_network("172.20.0.0/16")


def test_host_address_counts_as_its_32() -> None:
    assert pick_subnet([IPv4Address("172.17.200.9")]) == ip_network("172.18.0.0/16")
    assert pick_subnet(["172.17.200.9"]) == ip_network("172.18.0.0/16")


def test_interface_address_counts_as_its_connected_prefix() -> None:
    assert pick_subnet([IPv4Interface("172.17.3.4/24")]) == ip_network("172.18.0.0/16")


def test_default_route_link_local_loopback_and_v6_are_ignored() -> None:
    ignored = [
        ip_network("0.0.0.0/0"),
        ip_network("169.254.0.0/16"),
        ip_network("127.0.0.0/8"),
        ip_network("::/0"),
        ip_network("fd00::/8"),
    ]
    assert pick_subnet(ignored) == ip_network("172.17.0.0/16")


def test_after_all_sixteens_come_192_168_twenties() -> None:
    assert pick_subnet(ALL_SIXTEENS) == ip_network("192.168.0.0/20")
    taken = [*ALL_SIXTEENS, ip_network("192.168.0.0/20")]
    assert pick_subnet(taken) == ip_network("192.168.16.0/20")


def test_a_small_route_in_192_168_skips_its_twenty_only() -> None:
    taken = [*ALL_SIXTEENS, ip_network("192.168.1.0/24"), IPv4Address("192.168.20.1")]
    assert pick_subnet(taken) == ip_network("192.168.32.0/20")


def test_exhaustion_says_what_to_do() -> None:
    taken = [*ALL_SIXTEENS, ip_network("192.168.0.0/16")]
    with pytest.raises(PoolExhausted, match="pass an explicit subnet, or remove unused networks"):
        pick_subnet(taken)
    assert PoolExhausted.kind is ErrorKind.UNAVAILABLE


def test_custom_pool_large_carving_is_fast_and_correct() -> None:
    # 10/8 in /24s is 65536 candidates: the jump-past-conflict walk must not enumerate them.
    pools = [(ip_network("10.0.0.0/8"), 24)]
    taken = [ip_network(f"10.0.{n}.0/24") for n in range(256)] + [ip_network("10.1.0.0/17")]
    assert pick_subnet(taken, pools) == ip_network("10.1.128.0/24")


def test_pool_with_impossible_size_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="cannot be carved"):
        pick_subnet([], [(ip_network("10.0.0.0/16"), 8)])


# --- overlap ---


def test_overlap_message_names_the_owner_v4() -> None:
    taken = {"netA": ip_network("10.0.0.0/24"), "netB": ip_network("172.18.0.0/16")}
    with pytest.raises(PoolOverlap) as info:
        check_overlap(ip_network("172.18.0.0/16"), taken)
    assert str(info.value) == (
        'subnet 172.18.0.0/16 overlaps network "netB" (172.18.0.0/16): choose another subnet'
    )
    assert info.value.kind is ErrorKind.CONFLICT


def test_overlap_partial_and_v6() -> None:
    with pytest.raises(PoolOverlap, match=r'overlaps network "v6net" \(fd00:1::/48\)'):
        check_overlap(ip_network("fd00:1:0:5::/64"), {"v6net": ip_network("fd00:1::/48")})
    with pytest.raises(PoolOverlap, match='"wide"'):
        check_overlap(ip_network("10.5.0.0/24"), {"wide": ip_network("10.0.0.0/8")})


def test_no_overlap_passes_and_versions_do_not_mix() -> None:
    taken = {"a": ip_network("10.0.0.0/24"), "b": ip_network("fd00::/8")}
    check_overlap(ip_network("10.0.1.0/24"), taken)
    check_overlap(ip_network("fe00::/64"), taken)


# --- explicit IPv4 ---


def test_explicit_subnet_default_gateway_is_first_address() -> None:
    assert resolve_ipv4("10.1.0.0/16", None, None) == Subnet4(
        ip_network("10.1.0.0/16"), IPv4Address("10.1.0.1")
    )


def test_explicit_full_config() -> None:
    got = resolve_ipv4("10.1.0.0/16", "10.1.4.0/24", "10.1.0.254", [])
    assert got == Subnet4(
        ip_network("10.1.0.0/16"), IPv4Address("10.1.0.254"), ip_network("10.1.4.0/24")
    )


def test_automatic_when_no_subnet() -> None:
    got = resolve_ipv4(None, None, None, [ip_network("172.17.0.0/16")])
    assert got == Subnet4(ip_network("172.18.0.0/16"), IPv4Address("172.18.0.1"))


@pytest.mark.parametrize(
    ("subnet", "ip_range", "gateway", "field", "fragment"),
    [
        ("10.1.2.3/16", None, None, "Subnet", "use 10.1.0.0/16"),
        ("10.1.0.0", None, None, "Subnet", "CIDR"),
        ("10.1.0.0/33", None, None, "Subnet", "not a valid subnet"),
        ("banana/8", None, None, "Subnet", "not a valid subnet"),
        ("fd00::/64", None, None, "Subnet", "not an IPv4 subnet"),
        ("10.1.0.0/31", None, None, "Subnet", "too small"),
        ("10.1.0.0/32", None, None, "Subnet", "too small"),
        ("10.1.0.0/16", "10.2.0.0/24", None, "IPRange", "not inside subnet 10.1.0.0/16"),
        ("10.1.0.0/16", "10.1.4.7/24", None, "IPRange", "use 10.1.4.0/24"),
        ("10.1.0.0/16", "nope/24", None, "IPRange", "not a valid subnet"),
        ("10.1.0.0/16", "10.1.4.0", None, "IPRange", "CIDR"),
        ("10.1.0.0/16", None, "10.2.0.1", "Gateway", "not inside subnet"),
        ("10.1.0.0/16", None, "10.1.0.0", "Gateway", "network address"),
        ("10.1.0.0/16", None, "10.1.255.255", "Gateway", "broadcast address"),
        ("10.1.0.0/16", None, "10.1.0.1/16", "Gateway", "not a valid IPv4 address"),
        ("10.1.0.0/16", None, "fd00::1", "Gateway", "not an IPv4 address"),
        (None, "10.1.0.0/24", None, "IPRange", "without a Subnet"),
        (None, None, "10.1.0.1", "Gateway", "without a Subnet"),
    ],
)
def test_invalid_ipv4_configs(
    subnet: str | None, ip_range: str | None, gateway: str | None, field: str, fragment: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        resolve_ipv4(subnet, ip_range, gateway, [])
    assert info.value.field == field
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"{field}: ")


def test_smallest_v4_subnet_accepted() -> None:
    got = resolve_ipv4("10.9.9.8/30", None, None)
    assert got.gateway == IPv4Address("10.9.9.9")


# --- explicit IPv6 ---


def test_ipv6_explicit() -> None:
    assert resolve_ipv6("fd00:1::/64", None, None) == Subnet6(
        ip_network("fd00:1::/64"), IPv6Address("fd00:1::1")
    )
    got = resolve_ipv6("fd00:1::/64", "fd00:1::/80", "fd00:1::ffff")
    assert got.ip_range == ip_network("fd00:1::/80")
    assert got.gateway == IPv6Address("fd00:1::ffff")


def test_ipv6_last_address_may_be_gateway_no_broadcast() -> None:
    got = resolve_ipv6("fd00:1::/126", None, "fd00:1::3")
    assert got.gateway == IPv6Address("fd00:1::3")


@pytest.mark.parametrize(
    ("subnet", "ip_range", "gateway", "field", "fragment"),
    [
        (None, None, None, "Subnet", "must be given explicitly"),
        ("fd00:1::5/64", None, None, "Subnet", "use fd00:1::/64"),
        ("10.0.0.0/8", None, None, "Subnet", "not an IPv6 subnet"),
        ("fd00::/127", None, None, "Subnet", "too small"),
        ("fd00::/128", None, None, "Subnet", "too small"),
        ("fd00:1::/64", "fd00:2::/80", None, "IPRange", "not inside subnet"),
        ("fd00:1::/64", None, "fd00:1::", "Gateway", "network address"),
        ("fd00:1::/64", None, "fd00:2::1", "Gateway", "not inside subnet"),
        ("fd00:1::/64", None, "zz::1", "Gateway", "not a valid IPv6 address"),
    ],
)
def test_invalid_ipv6_configs(
    subnet: str | None, ip_range: str | None, gateway: str | None, field: str, fragment: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        resolve_ipv6(subnet, ip_range, gateway)
    assert info.value.field == field
    assert fragment in str(info.value)
