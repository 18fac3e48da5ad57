"""`--host-dns gateways[:PORT]`, decided purely: which addresses the host listeners should be on.

Static `--host-dns` addresses are wanted for the daemon's whole life. With `gateways`, so is
the gateway (IPv4, and IPv6 where the network has it) of every network whose bridge is a link
of this host: a bridge network from its creation, an overlay network from its first local
connect. Internal networks count too: their gateway is on the host's bridge like any other,
and the host listener never forwards, so it gives an internal network no way out; nor does it
answer a sandbox at all (`admission.SandboxSources`).
`plan_listeners` is the difference between the listeners open and the addresses wanted.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from netcore.errors import InvalidArgument
from netcore.model import Snapshot

from .listener import DNS_PORT, FLAG, HostAddress

GATEWAYS = "gateways"


def parse_gateways(value: str) -> int | None:
    """The port of `gateways` / `gateways:PORT`; None when `value` is an address."""
    word, _, port_s = value.partition(":")
    if word.lower() != GATEWAYS:
        return None
    if not port_s:
        return DNS_PORT
    if not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise InvalidArgument(f"{value!r}: port must be 1-65535", field=FLAG)
    return int(port_s)


def gateway_addresses(
    snapshot: Snapshot, port: int, local_links: Collection[str]
) -> tuple[HostAddress, ...]:
    """The gateways of the networks whose bridge is on this host, on `port`."""
    out: list[HostAddress] = []
    for network in snapshot.networks:
        if network.bridge not in local_links:
            continue  # an overlay network no sandbox of this host has joined yet
        out.append(HostAddress(network.ipv4.gateway, port))
        if network.ipv6 is not None:
            out.append(HostAddress(network.ipv6.gateway, port))
    return tuple(out)


def wanted_addresses(
    snapshot: Snapshot,
    static: Iterable[HostAddress],
    gateway_port: int | None,
    local_links: Collection[str],
) -> tuple[HostAddress, ...]:
    """Every address a host listener should be on: the static ones first, each once."""
    gateways = (
        gateway_addresses(snapshot, gateway_port, local_links) if gateway_port is not None else ()
    )
    return tuple(dict.fromkeys((*static, *gateways)))


@dataclass(frozen=True, slots=True)
class ListenerPlan:
    close: tuple[HostAddress, ...]  # open but no longer wanted
    open: tuple[HostAddress, ...]  # wanted but not open (new, or not bindable so far)


def plan_listeners(open_now: Iterable[HostAddress], wanted: Iterable[HostAddress]) -> ListenerPlan:
    current = tuple(open_now)
    target = tuple(wanted)
    current_set, target_set = set(current), set(target)
    return ListenerPlan(
        close=tuple(a for a in current if a not in target_set),
        open=tuple(a for a in target if a not in current_set),
    )
