"""`Kernel` in memory: records what the engine asked for, for tests without root."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from ..errors import NetlinkError, VanishedNamespace
from ..model import Network
from ..nft.redirect import render_dns_redirect, render_dns_redirect_teardown
from .base import AttachSpec, HostLinks, NetnsWorker, redirects_one_by_one
from .netns import named_path

T = TypeVar("T")


@dataclass
class FakeKernel:
    links: set[str] = field(default_factory=lambda: {"lo", "eth0"})
    namespaces: dict[str, set[str]] = field(default_factory=dict)  # path -> link names
    routes: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    nft: dict[str | None, str] = field(default_factory=dict)  # netns (None: host) -> script
    prefixes: list[ipaddress.IPv4Network] = field(default_factory=list)
    forwarding: bool = False
    fail_attach: Exception | None = None  # make the next attach fail
    fail_dns_redirect: dict[str, Exception] = field(default_factory=dict)  # netns -> error
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

    def host_link_names(self) -> frozenset[str]:
        return frozenset(self.links)

    def apply_nft(self, script: str, netns_path: str | None = None) -> None:
        self.calls.append("apply_nft" + (f" {netns_path}" if netns_path else ""))
        self.nft[netns_path] = script

    def enable_forwarding(self) -> None:
        self.forwarding = True

    def netns_worker(self, netns_path: str) -> FakeWorker:
        self.calls.append(f"netns_worker {netns_path}")
        if not self.netns_exists(netns_path):
            raise VanishedNamespace(f"namespace {netns_path} is gone")
        return FakeWorker(netns_path)

    def apply_dns_redirect(
        self, worker: NetnsWorker, udp_port: int, tcp_port: int, *, fresh: bool = False
    ) -> None:
        self.calls.append(f"apply_dns_redirect {worker.path}")
        if worker.path in self.fail_dns_redirect:
            raise self.fail_dns_redirect[worker.path]
        self.nft[worker.path] = render_dns_redirect(udp_port, tcp_port, fresh=fresh)

    def prepare_dns_redirects(self) -> None:
        self.calls.append("prepare_dns_redirects")

    def apply_dns_redirects(
        self, jobs: Sequence[tuple[NetnsWorker, int, int]]
    ) -> list[Exception | None]:
        return redirects_one_by_one(self, jobs)

    def remove_dns_redirect(self, netns_path: str, worker: NetnsWorker | None = None) -> None:
        self.calls.append(f"remove_dns_redirect {netns_path}")
        self.nft[netns_path] = render_dns_redirect_teardown()

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


@dataclass
class FakeWorker:
    """Runs every job on the caller's thread, in the test's own namespace: sockets it opens
    are plain loopback sockets of the test process."""

    path: str
    closed: bool = False

    def call(self, fn: Callable[[], T]) -> T:
        if self.closed:
            raise VanishedNamespace(f"worker of {self.path} is closed")
        return fn()

    def socket(self, family: int, type_: int, proto: int = 0) -> socket.socket:
        return self.call(lambda: socket.socket(family, type_, proto))

    def close(self) -> None:
        self.closed = True
