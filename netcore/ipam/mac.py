"""MAC addresses of endpoints: derived from the IPv4 address, or given by the user and checked."""

from __future__ import annotations

import ipaddress
import re

from ..errors import InvalidArgument
from ..model import IPv4Address

# The forms Go's net.ParseMAC accepts for 48-bit addresses, which is what Docker takes.
_COLON_OR_DASH = re.compile(r"[0-9a-fA-F]{2}([:-])(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}")
_DOTTED = re.compile(r"[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}")


def mac_from_ipv4(ip: IPv4Address | str) -> str:
    """Docker's classic derived MAC: `02:42:` + the four address bytes, e.g. 02:42:ac:11:00:02.

    02 sets the locally-administered bit and keeps the unicast bit clear, so it never collides
    with a vendor MAC, and one address always maps to the same MAC (stable neighbour entries).
    """
    address = ipaddress.IPv4Address(ip)
    return "02:42:" + ":".join(f"{byte:02x}" for byte in address.packed)


def validate_mac(value: object, field: str = "MacAddress") -> str:
    """A user-given MAC as lower-case `aa:bb:cc:dd:ee:ff`; refuses multicast and all-zero.

    Accepts `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff` and `aabb.ccdd.eeff`, any case.
    """
    if not isinstance(value, str) or not (
        _COLON_OR_DASH.fullmatch(value) or _DOTTED.fullmatch(value)
    ):
        raise InvalidArgument(
            f"{value!r} is not a MAC address: use the form 02:42:ac:11:00:02", field=field
        )
    digits = re.sub(r"[:.-]", "", value).lower()
    octets = [digits[i : i + 2] for i in range(0, 12, 2)]
    if int(octets[0], 16) & 0x01:
        raise InvalidArgument(
            f"{value!r} is a multicast address (lowest bit of the first octet set): use a unicast "
            "one, e.g. with first octet 02 (locally administered)",
            field=field,
        )
    if digits == "0" * 12:
        raise InvalidArgument(f"{value!r} is the all-zero address: use a real MAC", field=field)
    return ":".join(octets)
