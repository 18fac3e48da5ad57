"""Overlay networks: a bridge plus a VXLAN device per host, remote endpoints programmed statically.

Like Docker's overlay driver and flannel's vxlan backend: no multicast, no learning. For every
endpoint of another host on an overlay, its VXLAN device gets an FDB entry (MAC -> that host's
underlay address) and a permanent neighbour entry (IP -> MAC, answered by the device's ARP
proxy). `overlay_peers` is the pure part; `OverlayProgrammer` follows the registry and applies
the difference whenever a remote endpoint comes or goes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from typing import TYPE_CHECKING

from .errors import InvalidArgument, PoolOverlap
from .model import Network, Snapshot

if TYPE_CHECKING:
    from .kernel.base import Kernel

IPNetwork = IPv4Network | IPv6Network

log = logging.getLogger(__name__)

VXLAN_PORT = 4789  # IANA
VXLAN_OVERHEAD = 50  # outer Ethernet + IPv4 + UDP + VXLAN headers
FIRST_VNI = 4096  # Docker's overlay starts at 4096 too; below is left to other tools
MAX_VNI = 2**24 - 1


@dataclass(frozen=True, slots=True, order=True)
class Peer:
    """One remote endpoint as the VXLAN device must know it."""

    mac: str
    ip: str
    vtep: str  # the underlay address of its host


def vxlan_device(network: Network) -> str:
    return f"vx-{network.id[:12]}"


def overlay_peers(snapshot: Snapshot) -> dict[str, frozenset[Peer]]:
    """Network id -> the remote endpoints on it, for every overlay network of the snapshot."""
    remote = {s.id for s in snapshot.sandboxes if s.mode == "remote"}
    peers: dict[str, set[Peer]] = {n.id: set() for n in snapshot.networks if n.vni is not None}
    for ep in snapshot.endpoints:
        if ep.sandbox_id in remote and ep.network_id in peers and ep.vtep:
            # One entry per address: the device's proxy answers ARP and neighbour discovery.
            for ip in (ep.ipv4, ep.ipv6):
                if ip is not None:
                    peers[ep.network_id].add(Peer(ep.mac, str(ip), ep.vtep))
    return {nid: frozenset(p) for nid, p in peers.items()}


def next_vni(networks: list[Network]) -> int:
    """The lowest VNI no known overlay uses (etcd's compare-and-swap settles races)."""
    used = {n.vni for n in networks if n.vni is not None}
    vni = FIRST_VNI
    while vni in used:
        vni += 1
    if vni > MAX_VNI:
        from .errors import PoolExhausted

        raise PoolExhausted("every VXLAN id is in use: remove unused overlay networks")
    return vni


def overlay_fields(
    mtu: int | None, advertise_addr: str | None, kernel: Kernel, networks: Iterable[Network]
) -> dict[str, int]:
    """VNI and MTU of a new overlay network (MTU: the underlay's less VXLAN's headers)."""
    if advertise_addr is None:
        raise InvalidArgument(
            "overlay networks span hosts: start dnsd with --store etcd://HOST:PORT "
            "--advertise-addr ADDRESS",
            field="Driver",
        )
    mtu = mtu or kernel.underlay_mtu(advertise_addr) - VXLAN_OVERHEAD
    return {"vni": next_vni(list(networks)), "mtu": mtu}


def check_host_routes(network: Network, prefixes: Iterable[IPNetwork], host_id: str) -> None:
    """An overlay subnet must not shadow a route of this host (other hosts check theirs
    when they first connect)."""
    subnet = network.ipv4.subnet
    for prefix in prefixes:
        if prefix.version == 4 and prefix != subnet and prefix.overlaps(subnet):
            raise PoolOverlap(
                f"overlay subnet {subnet} overlaps the route {prefix} of host "
                f"{host_id or 'this host'}: choose another subnet"
            )


class OverlayProgrammer:
    """Registry listener: keeps every VXLAN device's FDB and neighbours equal to the remote
    endpoints, and removes the devices of overlays removed by another host."""

    def __init__(self, kernel) -> None:
        self.kernel = kernel
        self._programmed: dict[str, frozenset[Peer]] = {}
        self._networks: dict[str, Network] = {}
        self._lock = threading.Lock()

    def on_snapshot(self, snapshot: Snapshot) -> None:
        with self._lock:
            networks = {n.id: n for n in snapshot.networks if n.vni is not None}
            for nid in [n for n in self._networks if n not in networks]:
                gone = self._networks.pop(nid)
                self._programmed.pop(nid, None)
                self.kernel.delete_link(vxlan_device(gone))
                self.kernel.delete_link(gone.bridge)
                log.info("overlay %s removed: its bridge and VXLAN device deleted", gone.name)
            self._networks = networks
            for nid, peers in overlay_peers(snapshot).items():
                if self._programmed.get(nid) == peers:
                    continue
                if self.kernel.sync_vxlan_peers(vxlan_device(networks[nid]), peers):
                    self._programmed[nid] = peers  # else: no device yet; connect creates it

    def forget(self, network_id: str) -> None:
        """The device was (re)created: program it again at the next snapshot."""
        with self._lock:
            self._programmed.pop(network_id, None)
