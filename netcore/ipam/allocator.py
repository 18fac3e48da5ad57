"""Address allocation inside one subnet: serial (next-fit) order, like moby's bitseq `serial`.

Next-fit keeps going after the last address handed out and wraps at the end of the range, so an
address released a moment ago is not reused until every other free address has had its turn:
neighbours' ARP entries and DNS caches never see one address change hands at once.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import AddressInUse, AddressOutOfRange, InvalidArgument, NoAvailableAddress
from ..model import IPv4Address, IPv4Network, IPv6Address, IPv6Network

AnyNetwork = IPv4Network | IPv6Network
AnyAddress = IPv4Address | IPv6Address


class SubnetAllocator:
    """The addresses handed out in one subnet, as plain data (`allocated`, `cursor`).

    Rebuilding with the same subnet, gateway, range, `allocated` and `cursor` continues exactly
    where the old allocator stopped. Addresses are kept as ints so each step is O(1).
    """

    __slots__ = ("_allocated", "_cursor", "_gateway", "_high", "_low", "_range", "_subnet")

    def __init__(
        self,
        subnet: AnyNetwork,
        gateway: AnyAddress,
        ip_range: AnyNetwork | None = None,
        allocated: Iterable[AnyAddress] = (),
        cursor: AnyAddress | None = None,
    ) -> None:
        if gateway.version != subnet.version or gateway not in subnet:
            raise InvalidArgument(f"gateway {gateway} is not inside subnet {subnet}")
        if ip_range is not None and (
            ip_range.version != subnet.version or not ip_range.subnet_of(subnet)
        ):
            raise InvalidArgument(f"ip range {ip_range} is not inside subnet {subnet}")
        self._subnet = subnet
        self._gateway = gateway
        self._range = ip_range
        span = ip_range if ip_range is not None else subnet
        self._low = int(span.network_address)
        self._high = int(span.broadcast_address)
        self._allocated: set[int] = set()
        for address in allocated:
            self._check_inside(address)
            self._allocated.add(int(address))
        self._cursor: int | None = None
        if cursor is not None:
            self._check_inside(cursor)
            self._cursor = int(cursor)

    # --- plain-data state, for persistence ---

    @property
    def subnet(self) -> AnyNetwork:
        return self._subnet

    @property
    def gateway(self) -> AnyAddress:
        return self._gateway

    @property
    def ip_range(self) -> AnyNetwork | None:
        return self._range

    @property
    def allocated(self) -> frozenset[AnyAddress]:
        """Every address handed out (automatic or requested) and not released."""
        return frozenset(self._address(value) for value in self._allocated)

    @property
    def cursor(self) -> AnyAddress | None:
        """The last address handed out automatically; the next search starts after it."""
        return None if self._cursor is None else self._address(self._cursor)

    # --- operations ---

    def free_count(self) -> int:
        """How many addresses automatic allocation can still hand out (O(allocated))."""
        # Requested addresses may lie outside ip_range; only those inside it use up the range.
        unusable = self._reserved() | self._allocated
        inside = sum(1 for value in unusable if self._low <= value <= self._high)
        return self._high - self._low + 1 - inside

    def allocate(self, requested: AnyAddress | None = None) -> AnyAddress:
        """Hand out `requested`, or the next free address after the cursor (wrapping)."""
        if requested is not None:
            return self._allocate_requested(requested)
        if self.free_count() == 0:
            raise NoAvailableAddress(
                f"no free address left in {self._span_text()}: release addresses (disconnect "
                "endpoints) or use a larger subnet or ip range"
            )
        unusable = self._reserved() | self._allocated
        start = self._cursor + 1 if self._cursor is not None else self._low
        if not self._low <= start <= self._high:
            start = self._low
        # Each step past `start` skips an unusable address, so the walk ends within
        # len(unusable) + 1 steps: never an enumeration of the whole range.
        value = start
        while value in unusable:
            value = value + 1 if value < self._high else self._low
        self._allocated.add(value)
        self._cursor = value
        return self._address(value)

    def release(self, address: AnyAddress) -> None:
        """Return `address` to the pool; releasing a free address does nothing."""
        self._check_inside(address)
        self._allocated.discard(int(address))

    # --- helpers ---

    def _allocate_requested(self, requested: AnyAddress) -> AnyAddress:
        # Docker lets a requested address lie anywhere in the subnet, even outside ip_range.
        self._check_inside(requested)
        value = int(requested)
        subnet = self._subnet
        if value == int(subnet.network_address):
            reason = f"is the network address of {subnet}"
        elif subnet.version == 4 and value == int(subnet.broadcast_address):
            reason = f"is the broadcast address of {subnet}"
        elif value == int(self._gateway):
            reason = f"is the gateway of {subnet}"
        elif value in self._allocated:
            reason = "is already allocated"
        else:
            self._allocated.add(value)
            return requested
        raise AddressInUse(f"address {requested} {reason}: request another address or omit it")

    def _reserved(self) -> set[int]:
        reserved = {int(self._subnet.network_address), int(self._gateway)}
        if self._subnet.version == 4:
            reserved.add(int(self._subnet.broadcast_address))
        return reserved

    def _check_inside(self, address: AnyAddress) -> None:
        if address.version != self._subnet.version or address not in self._subnet:
            raise AddressOutOfRange(
                f"address {address} is outside subnet {self._subnet}: use an address inside it"
            )

    def _address(self, value: int) -> AnyAddress:
        return IPv4Address(value) if self._subnet.version == 4 else IPv6Address(value)

    def _span_text(self) -> str:
        if self._range is None:
            return f"subnet {self._subnet}"
        return f"ip range {self._range} of subnet {self._subnet}"

    def __repr__(self) -> str:
        return (
            f"SubnetAllocator(subnet={self._subnet}, gateway={self._gateway}, "
            f"ip_range={self._range}, allocated={len(self._allocated)}, cursor={self.cursor})"
        )
