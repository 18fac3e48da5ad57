"""The role the engine needs from the kernel, in plain data."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from ..model import Endpoint, Network

if TYPE_CHECKING:
    from ..overlay import Peer

T = TypeVar("T")


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


class NetnsWorker(Protocol):
    """Runs small jobs inside one namespace for callers on other threads (pooled threads)."""

    path: str

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` inside the namespace and return (or raise) what it did."""
        ...

    def socket(self, family: int, type_: int, proto: int = 0) -> socket.socket:
        """A socket living in the namespace (usable from any thread)."""
        ...

    def close(self) -> None: ...


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

    def host_link_names(self) -> frozenset[str]:
        """The names of the daemon's namespace's links (what `host_links().names` holds, for
        a fraction of the cost: reconcile asks on every round)."""
        ...

    def apply_nft(self, script: str, netns_path: str | None = None) -> None: ...

    def enable_forwarding(self) -> None: ...

    # --- what the embedded DNS server needs inside a sandbox ---

    def netns_worker(self, netns_path: str) -> NetnsWorker:
        """A worker thread inside the namespace (VanishedNamespace if it is gone)."""
        ...

    def apply_dns_redirect(
        self, worker: NetnsWorker, udp_port: int, tcp_port: int, *, fresh: bool = False
    ) -> None:
        """Redirect 127.0.0.11:53 of the worker's namespace to these ports (idempotent);
        `fresh`: no older daemon's table can be there (see `render_dns_redirect`)."""
        ...

    def prepare_dns_redirects(self) -> None:
        """Start what applying redirects needs (helper processes), so that a restart's
        batch does not wait for it; cheap, returns at once."""
        ...

    def apply_dns_redirects(
        self, jobs: Sequence[tuple[NetnsWorker, int, int]]
    ) -> list[Exception | None]:
        """`apply_dns_redirect` for each (worker, udp port, tcp port) of a batch (a restart),
        cheaper than one by one; what each raised, or None."""
        ...

    def remove_dns_redirect(self, netns_path: str, worker: NetnsWorker | None = None) -> None:
        """Drop that redirect; through `worker` when one is at hand (no nsenter exec)."""
        ...

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


def redirects_one_by_one(
    kernel: Kernel, jobs: Sequence[tuple[NetnsWorker, int, int]]
) -> list[Exception | None]:
    """`apply_dns_redirects` as a loop of `apply_dns_redirect` (for kernels without a batch)."""
    errors: list[Exception | None] = []
    for worker, udp_port, tcp_port in jobs:
        try:
            kernel.apply_dns_redirect(worker, udp_port, tcp_port)
            errors.append(None)
        except Exception as exc:
            errors.append(exc)
    return errors
