"""The `/etc/hosts` a sandbox sees: Docker's fixed block, extra hosts, then its own names.

Docker lists only the hostname (or the 12-hex short id) on the sandbox's own lines; we also add
the sandbox name so `getent hosts <name>` works inside the sandbox without asking 127.0.0.11.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from netcore.errors import InvalidArgument
from netcore.model import Sandbox
from netcore.names import validate_dns_name, validate_object_name

# Byte for byte what Docker 20.10 wrote (tab separated), see docker-files.md.
FIXED_BLOCK = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


def own_names(sandbox: Sandbox) -> tuple[str, ...]:
    """The names on the sandbox's own lines: hostname (or short id), then, for a dotted
    hostname, its first label (as Docker does for an FQDN), then the sandbox name; no repeats."""
    if sandbox.hostname:
        hostname = validate_dns_name(sandbox.hostname, "hostname")
    else:
        hostname = sandbox.short_id
    names = [hostname]
    if "." in hostname:
        names.append(hostname.split(".", 1)[0])
    names.append(validate_object_name(sandbox.name, "name"))
    unique: list[str] = []
    for name in names:
        # /etc/hosts lookups ignore case, so `Web` after `web` would be noise.
        if name.lower() not in (u.lower() for u in unique):
            unique.append(name)
    return tuple(unique)


def render_hosts(
    sandbox: Sandbox, addresses: Sequence[str], links: Sequence[tuple[str, str]] = ()
) -> str:
    """The hosts file of `sandbox`, whose endpoints have `addresses` (one line each, in order);
    `links` are `(address, names)` lines of its legacy links, written after the extra hosts.

    Mode none gets the fixed block only. Mode host must use the host's own /etc/hosts, which is
    not ours to render, so it is refused.
    """
    if sandbox.mode == "host":
        raise InvalidArgument(
            "a host-mode sandbox uses the host's /etc/hosts; copy that file instead of rendering",
            field="mode",
        )
    if sandbox.mode == "none":
        return FIXED_BLOCK
    lines = [
        f"{_address(address, 'extra_hosts')}\t{validate_dns_name(name, 'extra_hosts')}"
        for name, address in sandbox.extra_hosts
    ]
    lines.extend(f"{_address(address, 'links')}\t{names}" for address, names in links)
    names = " ".join(own_names(sandbox))
    lines.extend(f"{_address(address, 'addresses')}\t{names}" for address in addresses)
    return FIXED_BLOCK + "".join(f"{line}\n" for line in lines)


def _address(value: str, field: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidArgument(
            f"{value!r} is not an IP address (resolve names such as host-gateway first)",
            field=field,
        ) from None
