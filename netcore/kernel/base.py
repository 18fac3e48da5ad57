"""The role the engine needs from the kernel, in plain data."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..model import Endpoint, Network

if TYPE_CHECKING:
    from ..overlay import Peer


@dataclass(frozen=True, slots=True)
class AttachSpec:
    """Everything needed to plug one endpoint into one sandbox namespace."""

    endpoint: Endpoint
    network: Network
    netns_path: str
    default_route: bool  # this network gives the sandbox its default route


@dataclass(frozen=True, slots=True)
class HostLinks:
    """What exists in the daemon's namespace, for reconcile and pool picking."""

    names: frozenset[str]
    prefixes: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


class Kernel(Protocol):
    def ensure_bridge(self, network: Network) -> None:
        """Create the bridge if missing; (re)apply MTU, gateway addresses, up."""
        ...

    def delete_link(self, name: str) -> None:
        """Delete a link of the daemon's namespace; a missing one is not an error."""
        ...

    def create_netns(self, name: str) -> str: ...

    def delete_netns(self, name: str) -> None: ...

    def netns_exists(self, path: str) -> bool: ...

    def attach(self, spec: AttachSpec) -> None:
        """veth pair, host end on the bridge, sandbox end configured; rolls back on failure."""
        ...

    def set_default_route(
        self, netns_path: str, gateway4: str | None, gateway6: str | None
    ) -> None:
        """Replace (or with None remove) the sandbox's default routes."""
        ...

    def sandbox_links(self, netns_path: str) -> frozenset[str]: ...

    def delete_sandbox_link(self, netns_path: str, ifname: str) -> None: ...

    def host_links(self) -> HostLinks: ...

    def apply_nft(self, script: str, netns_path: str | None = None) -> None: ...

    def enable_forwarding(self) -> None: ...

    # --- overlay networks (a cluster store only) ---

    def ensure_vxlan(self, network: Network, local: str, peers: Iterable[Peer]) -> None:
        """Create the network's VXLAN device (VNI, `local` as the tunnel source) if missing,
        on its bridge, and program `peers` into its FDB and neighbour table."""
        ...

    def sync_vxlan_peers(self, device: str, peers: Iterable[Peer]) -> bool:
        """Make the device's remote entries exactly `peers`; False if it does not exist."""
        ...

    def underlay_mtu(self, address: str) -> int:
        """The MTU of the link holding `address`; NetlinkError when no link has it."""
        ...
