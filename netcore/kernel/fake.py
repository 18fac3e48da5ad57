"""`Kernel` in memory: records what the engine asked for, for tests without root."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ..errors import NetlinkError, VanishedNamespace
from ..model import Network
from .base import AttachSpec, HostLinks
from .netns import named_path


@dataclass
class FakeKernel:
    links: set[str] = field(default_factory=lambda: {"lo", "eth0"})
    namespaces: dict[str, set[str]] = field(default_factory=dict)  # path -> link names
    routes: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    nft: dict[str | None, str] = field(default_factory=dict)  # netns (None: host) -> script
    prefixes: list[ipaddress.IPv4Network] = field(default_factory=list)
    forwarding: bool = False
    fail_attach: Exception | None = None  # make the next attach fail
    calls: list[str] = field(default_factory=list)
    vxlan_peers: dict[str, frozenset] = field(default_factory=dict)  # device -> peers
    mtu: int = 1500

    def ensure_bridge(self, network: Network) -> None:
        self.calls.append(f"ensure_bridge {network.bridge}")
        self.links.add(network.bridge)

    def delete_link(self, name: str) -> None:
        self.calls.append(f"delete_link {name}")
        self.links.discard(name)
        self.vxlan_peers.pop(name, None)
        for ns_links in self.namespaces.values():
            ns_links.discard("peer:" + name)

    def create_netns(self, name: str) -> str:
        path = named_path(name)
        if path in self.namespaces:
            raise NetlinkError(f"namespace {name} exists")
        self.namespaces[path] = {"lo"}
        return path

    def delete_netns(self, name: str) -> None:
        self.namespaces.pop(named_path(name), None)

    def add_foreign_netns(self, path: str) -> None:
        """A namespace the daemon did not create (`/proc/PID/ns/net`)."""
        self.namespaces[path] = {"lo"}

    def netns_exists(self, path: str) -> bool:
        return path in self.namespaces or path == "/proc/self/ns/net"

    def attach(self, spec: AttachSpec) -> None:
        self.calls.append(f"attach {spec.endpoint.host_ifname}")
        if self.fail_attach is not None:
            exc, self.fail_attach = self.fail_attach, None
            raise exc
        if spec.netns_path not in self.namespaces:
            raise VanishedNamespace(f"sandbox namespace {spec.netns_path} is gone")
        if spec.network.bridge not in self.links:
            raise NetlinkError(f"bridge {spec.network.bridge} is missing")
        self.links.add(spec.endpoint.host_ifname)
        self.namespaces[spec.netns_path] |= {
            spec.endpoint.ifname,
            "peer:" + spec.endpoint.host_ifname,
        }
        if spec.default_route:
            self.routes[spec.netns_path] = (str(spec.network.ipv4.gateway), None)

    def set_default_route(
        self, netns_path: str, gateway4: str | None, gateway6: str | None
    ) -> None:
        self.routes[netns_path] = (gateway4, gateway6)

    def sandbox_links(self, netns_path: str) -> frozenset[str]:
        return frozenset(n for n in self.namespaces.get(netns_path, ()) if ":" not in n)

    def delete_sandbox_link(self, netns_path: str, ifname: str) -> None:
        self.namespaces.get(netns_path, set()).discard(ifname)

    def host_links(self) -> HostLinks:
        return HostLinks(names=frozenset(self.links), prefixes=tuple(self.prefixes))

    def apply_nft(self, script: str, netns_path: str | None = None) -> None:
        self.calls.append("apply_nft" + (f" {netns_path}" if netns_path else ""))
        self.nft[netns_path] = script

    def enable_forwarding(self) -> None:
        self.forwarding = True

    def ensure_vxlan(self, network: Network, local: str, peers) -> None:
        from ..overlay import vxlan_device

        device = vxlan_device(network)
        self.calls.append(f"ensure_vxlan {device} vni {network.vni} local {local}")
        self.links.add(device)
        self.vxlan_peers[device] = frozenset(peers)

    def sync_vxlan_peers(self, device: str, peers) -> bool:
        if device not in self.links:
            return False
        self.vxlan_peers[device] = frozenset(peers)
        return True

    def underlay_mtu(self, address: str) -> int:
        return self.mtu
