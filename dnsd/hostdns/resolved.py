"""systemd-resolved registration, decided purely: which link gets which DNS server and domains.

When `--host-dns` listens on a network's gateway, that network's bridge is a link resolved
should ask for the network's names: its DNS server is the gateway, its domain `~<network>`
(routing only: the host's search list is untouched), and `~<network>.<domain>` with
`--host-dns-domain`. `plan_calls` turns a change of what is wanted into calls; each call
renders as a `busctl` D-Bus call (org.freedesktop.resolve1.Manager `SetLinkDNS`,
`SetLinkDomains`, `RevertLink`) or as the equivalent `resolvectl` command line. The edge
(`registrar.py`) runs them.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from netcore.model import Snapshot

from .listener import DNS_PORT, HostAddress

BUS_NAME = "org.freedesktop.resolve1"
OBJECT_PATH = "/org/freedesktop/resolve1"
MANAGER = "org.freedesktop.resolve1.Manager"


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """What resolved should use on one bridge."""

    ifname: str
    servers: tuple[str, ...]  # the gateway addresses dnsd listens on (port 53)
    domains: tuple[str, ...]  # routing-only domains, without the `~`


@dataclass(frozen=True, slots=True)
class Call:
    """One change of one link: `dns`, `domain` or `revert`."""

    verb: str
    ifname: str
    args: tuple[str, ...] = ()


def wanted_links(
    snapshot: Snapshot, listening: Iterable[HostAddress], domain: str | None = None
) -> dict[str, LinkSettings]:
    """Bridge name -> settings, for every network whose gateway dnsd serves on port 53
    (resolved's SetLinkDNS has no port)."""
    on_53 = {a.ip for a in listening if a.port == DNS_PORT}
    out: dict[str, LinkSettings] = {}
    for network in snapshot.networks:
        gateways = [network.ipv4.gateway]
        if network.ipv6 is not None:
            gateways.append(network.ipv6.gateway)
        servers = tuple(str(g) for g in gateways if g in on_53)
        if not servers:
            continue
        domains = [network.name]
        if domain:
            domains.append(f"{network.name}.{domain.rstrip('.')}")
        out[network.bridge] = LinkSettings(network.bridge, servers, tuple(domains))
    return out


def plan_calls(old: Mapping[str, LinkSettings], new: Mapping[str, LinkSettings]) -> list[Call]:
    """The calls that take resolved from `old` to `new`: set changed links, revert gone ones."""
    calls: list[Call] = []
    for ifname in sorted(old.keys() - new.keys()):
        calls.append(Call("revert", ifname))
    for ifname in sorted(new):
        settings = new[ifname]
        if old.get(ifname) == settings:
            continue
        calls.append(Call("dns", ifname, settings.servers))
        calls.append(Call("domain", ifname, tuple(f"~{d}" for d in settings.domains)))
    return calls


def resolvectl_argv(call: Call) -> list[str]:
    """`resolvectl dns br-x 10.1.0.1`, `resolvectl domain br-x ~app`, `resolvectl revert br-x`."""
    return ["resolvectl", call.verb, call.ifname, *call.args]


def busctl_argv(call: Call, ifindex: int) -> list[str]:
    """The same change as a D-Bus method call of resolved's Manager, through `busctl`."""
    head = ["busctl", "call", BUS_NAME, OBJECT_PATH, MANAGER]
    if call.verb == "revert":
        return [*head, "RevertLink", "i", str(ifindex)]
    if call.verb == "dns":
        # a(iay): (address family, address bytes) per server
        args: list[str] = [str(ifindex), str(len(call.args))]
        for server in call.args:
            address = ipaddress.ip_address(server)
            family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            packed = address.packed
            args += [str(int(family)), str(len(packed)), *(str(b) for b in packed)]
        return [*head, "SetLinkDNS", "ia(iay)", *args]
    if call.verb == "domain":
        # a(sb): (domain, routing only) per domain
        args = [str(ifindex), str(len(call.args))]
        for item in call.args:
            routing = item.startswith("~")
            args += [item.removeprefix("~"), "true" if routing else "false"]
        return [*head, "SetLinkDomains", "ia(sb)", *args]
    raise ValueError(f"unknown resolved call {call.verb!r}")
