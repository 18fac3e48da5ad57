"""Pure IPAM: default pools and subnet validation, per-subnet address allocation, MACs."""

from .allocator import SubnetAllocator
from .mac import mac_from_ipv4, validate_mac
from .pools import (
    DEFAULT_POOLS,
    check_overlap,
    pick_subnet,
    resolve_ipv4,
    resolve_ipv6,
)

__all__ = [
    "DEFAULT_POOLS",
    "SubnetAllocator",
    "check_overlap",
    "mac_from_ipv4",
    "pick_subnet",
    "resolve_ipv4",
    "resolve_ipv6",
    "validate_mac",
]
