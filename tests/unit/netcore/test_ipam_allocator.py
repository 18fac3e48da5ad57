"""SubnetAllocator: next-fit order, requested addresses, exhaustion, IPv6, state round trip."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netcore.errors import (
    AddressInUse,
    AddressOutOfRange,
    ErrorKind,
    InvalidArgument,
    NoAvailableAddress,
)
from netcore.ipam.allocator import SubnetAllocator


def v4(text: str) -> IPv4Address:
    return IPv4Address(text)


def make(subnet: str = "10.0.0.0/29", gateway: str = "10.0.0.1", **kw: object) -> SubnetAllocator:
    return SubnetAllocator(ip_network(subnet), ip_address(gateway), **kw)  # type: ignore[arg-type]


def test_exhaustion_of_a_29_gives_exactly_five() -> None:
    alloc = make()
    assert alloc.free_count() == 5
    got = [alloc.allocate() for _ in range(5)]
    assert got == [v4(f"10.0.0.{n}") for n in range(2, 7)]
    assert alloc.free_count() == 0
    with pytest.raises(NoAvailableAddress, match=r"10\.0\.0\.0/29") as info:
        alloc.allocate()
    assert info.value.kind is ErrorKind.UNAVAILABLE


def test_released_address_is_not_reused_before_wrap() -> None:
    alloc = make("10.0.0.0/28")
    first = [alloc.allocate() for _ in range(3)]  # .2 .3 .4
    alloc.release(first[0])
    # Next-fit continues after the cursor (.4), not with the just-freed .2.
    assert alloc.allocate() == v4("10.0.0.5")
    assert alloc.allocate() == v4("10.0.0.6")


def test_wraps_around_to_the_lowest_free_address() -> None:
    alloc = make()
    for _ in range(5):
        alloc.allocate()  # .2 .. .6, cursor at .6 (the last usable one)
    alloc.release(v4("10.0.0.4"))
    alloc.release(v4("10.0.0.3"))
    assert alloc.allocate() == v4("10.0.0.3")  # wrapped past broadcast, network and gateway
    assert alloc.allocate() == v4("10.0.0.4")
    with pytest.raises(NoAvailableAddress):
        alloc.allocate()


def test_reuse_order_after_several_releases_follows_address_order_from_cursor() -> None:
    alloc = make("10.0.0.0/28")  # usable .2 .. .14
    for _ in range(13):
        alloc.allocate()
    for n in (9, 3, 12):
        alloc.release(v4(f"10.0.0.{n}"))
    # Cursor is .14: wrap, then ascending order, whatever the release order was.
    assert [alloc.allocate() for _ in range(3)] == [v4("10.0.0.3"), v4("10.0.0.9"), v4("10.0.0.12")]


def test_requested_inside_subnet() -> None:
    alloc = make("10.0.0.0/24")
    assert alloc.allocate(v4("10.0.0.77")) == v4("10.0.0.77")
    assert v4("10.0.0.77") in alloc.allocated
    # A requested address does not move the cursor: automatic still starts at .2.
    assert alloc.allocate() == v4("10.0.0.2")


def test_requested_out_of_subnet() -> None:
    alloc = make("10.0.0.0/24")
    with pytest.raises(AddressOutOfRange, match=r"10\.0\.1\.5 is outside subnet 10\.0\.0\.0/24"):
        alloc.allocate(v4("10.0.1.5"))
    with pytest.raises(AddressOutOfRange):
        alloc.allocate(IPv6Address("fd00::5"))


@pytest.mark.parametrize(
    ("address", "fragment"),
    [
        ("10.0.0.0", "network address"),
        ("10.0.0.255", "broadcast address"),
        ("10.0.0.1", "gateway"),
    ],
)
def test_requested_reserved_addresses_are_refused(address: str, fragment: str) -> None:
    alloc = make("10.0.0.0/24")
    with pytest.raises(AddressInUse, match=fragment) as info:
        alloc.allocate(v4(address))
    assert address in str(info.value)


def test_requested_taken_address_is_refused() -> None:
    alloc = make("10.0.0.0/24")
    taken = alloc.allocate()
    with pytest.raises(AddressInUse, match=r"10\.0\.0\.2 is already allocated"):
        alloc.allocate(taken)


def test_ip_range_is_respected_and_requested_may_lie_outside_it() -> None:
    alloc = make("10.0.0.0/24", ip_range=ip_network("10.0.0.128/30"))
    assert alloc.free_count() == 4
    got = [alloc.allocate() for _ in range(4)]
    assert got == [v4(f"10.0.0.{n}") for n in (128, 129, 130, 131)]
    with pytest.raises(NoAvailableAddress, match=r"ip range 10\.0\.0\.128/30"):
        alloc.allocate()
    # Docker accepts a requested address outside ip_range as long as it is in the subnet,
    # and it does not use up the range.
    assert alloc.allocate(v4("10.0.0.9")) == v4("10.0.0.9")
    alloc.release(v4("10.0.0.129"))
    assert alloc.free_count() == 1
    assert alloc.allocate() == v4("10.0.0.129")


def test_ip_range_containing_the_gateway_skips_it() -> None:
    alloc = make("10.0.0.0/24", ip_range=ip_network("10.0.0.0/29"))
    assert [alloc.allocate() for _ in range(5)] == [v4(f"10.0.0.{n}") for n in range(2, 7)]
    assert alloc.allocate() == v4("10.0.0.7")  # broadcast of the range, not of the subnet


def test_ipv6_64_starts_at_2_without_enumerating() -> None:
    alloc = make("fd00:1::/64", "fd00:1::1")
    assert alloc.allocate() == IPv6Address("fd00:1::2")
    assert alloc.allocate() == IPv6Address("fd00:1::3")
    assert alloc.free_count() == 2**64 - 4  # network, gateway and the two handed out


def test_ipv6_last_address_is_usable_and_wraps() -> None:
    alloc = make("fd00::/126", "fd00::1")
    assert [alloc.allocate() for _ in range(2)] == [IPv6Address("fd00::2"), IPv6Address("fd00::3")]
    with pytest.raises(NoAvailableAddress):
        alloc.allocate()
    alloc.release(IPv6Address("fd00::2"))
    assert alloc.allocate() == IPv6Address("fd00::2")


def test_release_free_is_noop_and_out_of_subnet_raises() -> None:
    alloc = make()
    alloc.release(v4("10.0.0.5"))
    assert alloc.allocated == frozenset()
    with pytest.raises(AddressOutOfRange):
        alloc.release(v4("192.168.1.1"))


def test_state_round_trip_continues_where_it_stopped() -> None:
    alloc = make("10.0.0.0/28")
    for _ in range(6):
        alloc.allocate()  # .2 .. .7
    alloc.release(v4("10.0.0.3"))
    alloc.allocate(v4("10.0.0.12"))
    rebuilt = make("10.0.0.0/28", allocated=alloc.allocated, cursor=alloc.cursor)
    assert rebuilt.allocated == alloc.allocated
    assert rebuilt.cursor == alloc.cursor == v4("10.0.0.7")
    assert rebuilt.free_count() == alloc.free_count()
    assert [rebuilt.allocate() for _ in range(7)] == [alloc.allocate() for _ in range(7)]


def test_constructor_refuses_inconsistent_state() -> None:
    with pytest.raises(InvalidArgument, match="gateway"):
        make("10.0.0.0/24", "10.0.1.1")
    with pytest.raises(InvalidArgument, match="ip range"):
        make("10.0.0.0/24", ip_range=ip_network("10.0.1.0/28"))
    with pytest.raises(AddressOutOfRange):
        make("10.0.0.0/24", allocated=[v4("10.9.9.9")])
    with pytest.raises(AddressOutOfRange):
        make("10.0.0.0/24", cursor=v4("10.9.9.9"))


# --- property: against a naive reference, never a duplicate ---


def _reference_next(low: int, high: int, unusable: set[int], cursor: int | None) -> int | None:
    """The obvious (enumerating) next-fit: what the allocator must match on small ranges."""
    start = low if cursor is None or not low <= cursor < high else cursor + 1
    order = list(range(start, high + 1)) + list(range(low, start))
    return next((value for value in order if value not in unusable), None)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("alloc"), st.none()),
        st.tuples(st.just("request"), st.integers(0, 31)),
        st.tuples(st.just("release"), st.integers(0, 31)),
    ),
    max_size=120,
)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(ops=operations, use_range=st.booleans())
def test_random_sequences_never_duplicate_and_match_reference(
    ops: list[tuple[str, int | None]], use_range: bool
) -> None:
    subnet = ip_network("10.0.0.0/27")
    ip_range = ip_network("10.0.0.8/29") if use_range else None
    alloc = SubnetAllocator(subnet, v4("10.0.0.1"), ip_range)
    low, high = (8, 15) if use_range else (0, 31)
    reserved = {0, 1, 31}
    held: set[int] = set()
    cursor: int | None = None
    for op, arg in ops:
        if op == "alloc":
            expected = _reference_next(low, high, reserved | held, cursor)
            if expected is None:
                with pytest.raises(NoAvailableAddress):
                    alloc.allocate()
                continue
            got = int(alloc.allocate()) - int(subnet.network_address)
            assert got == expected
            assert got not in held and got not in reserved
            held.add(got)
            cursor = got
        elif op == "request":
            assert arg is not None
            address = subnet[arg]
            if arg in reserved or arg in held:
                with pytest.raises(AddressInUse):
                    alloc.allocate(address)
            else:
                assert alloc.allocate(address) == address
                held.add(arg)
        else:
            assert arg is not None
            alloc.release(subnet[arg])
            held.discard(arg)
        assert {int(a) - int(subnet.network_address) for a in alloc.allocated} == held
        usable = {v for v in range(low, high + 1)} - reserved - held
        assert alloc.free_count() == len(usable)
