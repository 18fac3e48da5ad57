"""Typed errors of the engine, classified by kind so one edge maps them to HTTP codes.

Every message says what went wrong *and* what to do about it where that is knowable.
"""

from __future__ import annotations

import enum
from typing import ClassVar


class ErrorKind(enum.Enum):
    """What the caller did wrong (or not): the only thing an API edge needs to know."""

    INVALID_ARGUMENT = "invalid_argument"  # HTTP 400
    NOT_FOUND = "not_found"  # HTTP 404
    CONFLICT = "conflict"  # HTTP 409
    UNAVAILABLE = "unavailable"  # HTTP 503
    INTERNAL = "internal"  # HTTP 500


class NetcoreError(Exception):
    """Root of every error the engine raises on purpose."""

    kind: ClassVar[ErrorKind] = ErrorKind.INTERNAL


class InvalidArgument(NetcoreError):
    kind = ErrorKind.INVALID_ARGUMENT

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class NotFound(NetcoreError):
    kind = ErrorKind.NOT_FOUND


class Conflict(NetcoreError):
    kind = ErrorKind.CONFLICT


class Unavailable(NetcoreError):
    kind = ErrorKind.UNAVAILABLE


# --- IPAM (the moby ipamapi set, each with its kind) ---


class IpamError(NetcoreError):
    kind = ErrorKind.CONFLICT


class PoolOverlap(IpamError):
    """A requested subnet overlaps another network or a route of the host."""


class PoolExhausted(IpamError):
    """No default pool prefix is free."""

    kind = ErrorKind.UNAVAILABLE


class NoAvailableAddress(IpamError):
    """Every address of a subnet (or its ip_range) is allocated."""

    kind = ErrorKind.UNAVAILABLE


class AddressInUse(IpamError):
    """A specific address was requested and is already allocated."""


class AddressOutOfRange(IpamError):
    """A requested address lies outside the subnet (or its ip_range)."""

    kind = ErrorKind.INVALID_ARGUMENT


# --- Names and objects ---


class NameInUse(Conflict):
    pass


class NetworkNotFound(NotFound):
    pass


class SandboxNotFound(NotFound):
    pass


class NetworkInUse(Conflict):
    """A network still has endpoints; disconnect them first."""


class VanishedNamespace(NotFound):
    """The namespace file of a sandbox is gone (deleted behind the daemon's back)."""


# --- Kernel edges ---


class NetlinkError(NetcoreError):
    """A netlink request failed; the message carries the operation and the kernel's answer."""


class NftError(NetcoreError):
    """`nft -f` refused a script; keeps the script and nft's message (with line numbers)."""

    def __init__(self, message: str, script: str = "") -> None:
        super().__init__(message)
        self.script = script


class StoreError(NetcoreError):
    """The state store could not be written (disk full, read-only): nothing was changed."""

    kind = ErrorKind.UNAVAILABLE


class AllocationConflict(StoreError):
    """Another host took the same address, VNI or name (or created an overlapping overlay) at
    the same moment: nothing was written; the registry now knows, so a retry picks another."""

    kind = ErrorKind.CONFLICT
