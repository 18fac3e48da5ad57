"""Validation of every name that reaches a file path, an interface name, an nft rule or DNS.

Hostile names (`../x`, `a;b`, 300 characters, unicode) are refused here, once, at the edge.
"""

from __future__ import annotations

import re
import secrets

from .errors import InvalidArgument

# Docker's object-name rule, which is also safe as a file name and in nft strings.
_OBJECT_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_DNS_LABEL = re.compile(r"^[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?$")
_IFNAME = re.compile(r"^[a-zA-Z0-9_.-]{1,15}$")  # IFNAMSIZ - 1
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

MAX_OBJECT_NAME = 63  # one DNS label: every object name is also a DNS name


def validate_object_name(value: object, field: str = "Name") -> str:
    """A network or sandbox name: Docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 63 chars."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument("must be a non-empty string", field=field)
    if len(value) > MAX_OBJECT_NAME:
        raise InvalidArgument(f"longer than {MAX_OBJECT_NAME} characters", field=field)
    if not _OBJECT_NAME.fullmatch(value) or value in (".", ".."):
        raise InvalidArgument(
            f"invalid name {value!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", field=field
        )
    return value


def validate_dns_name(value: object, field: str) -> str:
    """A host name or alias: dot-separated DNS labels (letters, digits, `-`, `_`), <= 253."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument("must be a non-empty string", field=field)
    name = value.rstrip(".") if value != "." else value
    if len(name) > 253:
        raise InvalidArgument("longer than 253 characters", field=field)
    for label in name.split("."):
        if not _DNS_LABEL.fullmatch(label):
            raise InvalidArgument(
                f"invalid DNS name {value!r}: labels are 1-63 of [a-zA-Z0-9_-]", field=field
            )
    return name


def validate_ifname(value: object, field: str) -> str:
    """A Linux interface name: 1-15 of `[a-zA-Z0-9_.-]`."""
    if not isinstance(value, str) or not _IFNAME.fullmatch(value) or value in (".", ".."):
        raise InvalidArgument(
            f"invalid interface name {value!r}: 1-15 of [a-zA-Z0-9_.-]", field=field
        )
    return value


def is_full_id(value: str) -> bool:
    return bool(_HEX64.fullmatch(value))


def new_id() -> str:
    """A fresh 64-hex object id, like Docker's."""
    return secrets.token_hex(32)
