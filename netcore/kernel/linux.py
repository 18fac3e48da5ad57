"""`Kernel` on real Linux: pyroute2 netlink for links/addresses/routes, iproute2 for netns.

Never touches sysfs: when the daemon runs in a namespace entered with `nsenter --net` only,
/sys still shows the original namespace's devices. /proc/sys/net follows the reader's
namespace, so sysctls are written there.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import struct
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from pyroute2 import IPRoute

from ..errors import NetlinkError, VanishedNamespace
from ..model import Network
from ..nft.apply import NftCli
from ..nft.inproc import NftHelpers, library_available
from ..nft.redirect import render_dns_redirect, render_dns_redirect_teardown
from . import netns, vxlan
from .base import AttachSpec, HostLinks, NetnsWorker, redirects_one_by_one
from .rtnl import Rtnl

log = logging.getLogger(__name__)

_IFA_F_NODAD = 0x02  # an IPv6 address usable at once: the subnet is ours, no duplicate possible


class LinuxKernel:
    def __init__(self) -> None:
        self._ipr: IPRoute | None = None
        self._rtnl: Rtnl | None = None
        self._lock = threading.Lock()

    def _host_rtnl(self) -> Rtnl:
        if self._rtnl is None:
            self._rtnl = Rtnl()
        return self._rtnl

    def _host(self) -> IPRoute:
        if self._ipr is None:
            self._ipr = IPRoute()
        return self._ipr

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
        if self._rtnl is not None:
            self._rtnl.close()
            self._rtnl = None

    # --- bridges ---

    def ensure_bridge(self, network: Network) -> None:
        rt = self._host_rtnl()
        idx = rt.link_index(network.bridge)
        if idx is None:
            rt.add_bridge(network.bridge)
            idx = rt.link_index(network.bridge)
            assert idx is not None
        rt.set_link(idx, mtu=network.mtu, up=True)
        # NLM_F_REPLACE: adding an address the bridge already has is not an error.
        v4 = network.ipv4
        rt.add_address(idx, str(v4.gateway), v4.subnet.prefixlen, nodad=False)
        if network.ipv6 is not None:
            v6 = network.ipv6
            rt.add_address(idx, str(v6.gateway), v6.subnet.prefixlen, nodad=True)
        # Published ports reached through 127.0.0.1 are DNATed out of this bridge.
        _sysctl(f"net/ipv4/conf/{network.bridge}/route_localnet", "1")

    def delete_link(self, name: str) -> None:
        rt = self._host_rtnl()
        idx = rt.link_index(name)
        if idx is None:
            return
        try:
            rt.delete_link(idx)
        except NetlinkError as exc:
            if "No such device" not in str(exc):  # gone meanwhile: fine
                raise

    def enable_forwarding(self) -> None:
        _sysctl("net/ipv4/ip_forward", "1")
        _sysctl("net/ipv6/conf/all/forwarding", "1", optional=True)

    # --- namespaces ---

    def create_netns(self, name: str) -> str:
        return netns.create(name)

    def delete_netns(self, name: str) -> None:
        netns.delete(name)

    def netns_exists(self, path: str) -> bool:
        return netns.exists(path)

    # --- endpoints ---

    def attach(self, spec: AttachSpec) -> None:
        ep, net = spec.endpoint, spec.network
        rt = self._host_rtnl()
        bridge = rt.link_index(net.bridge)
        if bridge is None:
            raise NetlinkError(f"bridge {net.bridge} of network {net.name} is missing")
        peer = "tmp" + ep.id[:12]  # 15 chars, unique; renamed inside the sandbox
        try:
            fd = os.open(spec.netns_path, os.O_RDONLY)
        except OSError as exc:
            raise VanishedNamespace(f"sandbox namespace {spec.netns_path} is gone") from exc
        try:
            rt.add_veth(ep.host_ifname, peer, fd)
        finally:
            os.close(fd)
        try:
            host = rt.link_index(ep.host_ifname)
            assert host is not None
            # Before it goes up: a bridge port needs no IPv6 of its own (the bridge holds the
            # gateway), and each one that has it adds routes to this namespace's IPv6 table,
            # which every later link change of a port walks whole (rt6_sync_down_dev): with
            # 1,000 sandboxes that walk cost each connect ~2 ms of kernel time.
            _sysctl(f"net/ipv6/conf/{ep.host_ifname}/disable_ipv6", "1", optional=True)
            rt.set_link(host, master=bridge, mtu=net.mtu, up=True)
            rt.set_hairpin(host)
            self._configure_sandbox_end(spec, peer)
        except BaseException:
            self.delete_link(ep.host_ifname)  # deleting one end removes the pair
            raise

    def _configure_sandbox_end(self, spec: AttachSpec, peer: str) -> None:
        ep, net = spec.endpoint, spec.network
        nl, arp = netns.run_in(
            spec.netns_path,
            lambda: (
                socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0),
                socket.socket(socket.AF_PACKET, socket.SOCK_RAW),
            ),
        )
        with Rtnl(nl) as rt:
            idx = rt.link_index(peer)
            assert idx is not None
            rt.set_link(idx, ifname=ep.ifname, address=ep.mac, mtu=net.mtu)
            rt.add_address(idx, str(ep.ipv4), net.ipv4.subnet.prefixlen, nodad=False)
            if ep.ipv6 is not None and net.ipv6 is not None:
                rt.add_address(idx, str(ep.ipv6), net.ipv6.subnet.prefixlen, nodad=True)
            rt.set_link(idx, up=True)
            if spec.default_route:
                rt.replace_default_route(str(net.ipv4.gateway))
                if net.ipv6 is not None and ep.ipv6 is not None:
                    rt.replace_default_route(str(net.ipv6.gateway))
            _gratuitous_arp(arp, ep.ifname, ep.mac, ep.ipv4)

    def set_default_route(
        self, netns_path: str, gateway4: str | None, gateway6: str | None
    ) -> None:
        nl = netns.open_socket(netns_path, socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
        with Rtnl(nl) as rt:
            for family, gateway in ((socket.AF_INET, gateway4), (socket.AF_INET6, gateway6)):
                if gateway is None:
                    rt.delete_default_route(family)
                else:
                    rt.replace_default_route(gateway)

    def sandbox_links(self, netns_path: str) -> frozenset[str]:
        with sandbox_iproute(netns_path) as ipr:
            return frozenset(link.get("ifname") for link in ipr.get_links())

    def delete_sandbox_link(self, netns_path: str, ifname: str) -> None:
        with sandbox_iproute(netns_path) as ipr:
            idx = _lookup(ipr, ifname)
            if idx is not None:
                ipr.link("del", index=idx)

    def host_links(self) -> HostLinks:
        ipr = self._host()
        names = frozenset(link.get("ifname") for link in ipr.get_links())
        prefixes: list[Any] = []
        for addr in ipr.get_addr():
            prefixes.append(
                ipaddress.ip_interface(f"{addr.get('address')}/{addr['prefixlen']}").network
            )
        for route in ipr.get_routes(family=socket.AF_INET):
            dst = route.get("dst")
            if dst and route["dst_len"]:
                prefixes.append(ipaddress.ip_network(f"{dst}/{route['dst_len']}", strict=False))
        return HostLinks(names=names, prefixes=tuple(prefixes))

    def host_link_names(self) -> frozenset[str]:
        # libc's if_nameindex (one RTM_GETLINK dump parsed in C, in this thread's namespace:
        # the daemon's) instead of decoding every link with pyroute2: with 1,000 sandboxes
        # (2,000 veths) that decoding took ~1.5 s of CPU on each reconcile, every 10 s,
        # under the engine's lock.
        return frozenset(name for _, name in socket.if_nameindex())

    def apply_nft(self, script: str, netns_path: str | None = None) -> None:
        NftCli().apply(script, netns=netns_path)

    # --- the embedded DNS server's part of a sandbox ---

    def netns_worker(self, netns_path: str) -> netns.NamespaceWorker:
        return netns.NamespaceWorker(netns_path)

    def apply_dns_redirect(
        self, worker: NetnsWorker, udp_port: int, tcp_port: int, *, fresh: bool = False
    ) -> None:
        # libnftables in a helper process (~1 ms), else the nft binary forked by a thread
        # inside the namespace, which starts there: no nsenter exec either way.
        script = render_dns_redirect(udp_port, tcp_port, fresh=fresh)
        self._apply_in(worker.path, script, worker)

    def prepare_dns_redirects(self) -> None:
        if library_available():  # each helper imports for ~0.15 s: meanwhile, not on demand
            _helpers().start()

    def apply_dns_redirects(
        self, jobs: Sequence[tuple[NetnsWorker, int, int]]
    ) -> list[Exception | None]:
        if not library_available():  # the nft binary: a fork per namespace either way
            return redirects_one_by_one(self, jobs)
        gone = {w.path for w, _, _ in jobs if not netns.exists(w.path)}
        batch = [(w.path, render_dns_redirect(u, t)) for w, u, t in jobs if w.path not in gone]
        applied = iter(_helpers().apply_each(batch))
        return [
            VanishedNamespace(f"namespace {w.path} is gone") if w.path in gone else next(applied)
            for w, _, _ in jobs
        ]

    def remove_dns_redirect(self, netns_path: str, worker: NetnsWorker | None = None) -> None:
        self._apply_in(netns_path, render_dns_redirect_teardown(), worker)

    def _apply_in(self, path: str, script: str, worker: NetnsWorker | None) -> None:
        if library_available():
            if not netns.exists(path):
                raise VanishedNamespace(f"namespace {path} is gone")
            _helpers().apply(path, script)
            return
        if worker is None:
            worker = netns.NamespaceWorker(path)
        worker.call(lambda: NftCli().apply(script))

    # --- overlays ---

    def ensure_vxlan(self, network: Network, local: str, peers) -> None:
        from ..overlay import vxlan_device

        device = vxlan_device(network)
        vxlan.ensure_vxlan(device, network, local)
        vxlan.sync_peers(device, [(p.mac, p.ip, p.vtep) for p in peers])

    def sync_vxlan_peers(self, device: str, peers) -> bool:
        return vxlan.sync_peers(device, [(p.mac, p.ip, p.vtep) for p in peers])

    def underlay_mtu(self, address: str) -> int:
        return vxlan.underlay_mtu(address)


@contextlib.contextmanager
def sandbox_iproute(netns_path: str) -> Iterator[IPRoute]:
    """pyroute2 on a netlink socket opened inside the namespace by a setns thread.

    Not `IPRoute(netns=...)`: that forks the daemon, and the child inherits its event loop,
    signal handlers and sockets (one such child unlinked the API socket on its way out).
    """
    try:
        sock = netns.open_socket(netns_path, socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
    except OSError as exc:
        raise VanishedNamespace(f"open netlink in {netns_path}: {exc}") from exc
    ipr = IPRoute(use_socket=sock)
    try:
        yield ipr
    finally:
        ipr.close()
        sock.close()


def _lookup(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _sysctl(key: str, value: str, *, optional: bool = False) -> None:
    try:
        with open(f"/proc/sys/{key}", "w") as f:
            f.write(value)
    except OSError as exc:
        if not optional:
            raise NetlinkError(f"sysctl {key.replace('/', '.')}={value}: {exc.strerror}") from exc


def _gratuitous_arp(sock: socket.socket, ifname: str, mac: str, ip: ipaddress.IPv4Address) -> None:
    """Announce the address so neighbours drop a stale entry for it (Docker does the same).

    `sock` is an AF_PACKET socket opened inside the sandbox's namespace."""
    hw = bytes.fromhex(mac.replace(":", ""))
    addr = ip.packed
    frame = (
        b"\xff" * 6
        + hw
        + struct.pack("!H", 0x0806)
        + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
        + hw
        + addr
        + b"\x00" * 6
        + addr
    )
    try:
        sock.bind((ifname, 0))
        sock.send(frame)
    except OSError as exc:  # an announcement is best effort
        log.debug("gratuitous arp on %s: %s", ifname, exc)
    finally:
        # Closing a bound packet socket waits for an RCU grace period (~10 ms): not on the
        # connect path.
        threading.Thread(target=sock.close, name="close-arp", daemon=True).start()


_nft_helpers: NftHelpers | None = None
_nft_helpers_lock = threading.Lock()


def _helpers() -> NftHelpers:
    global _nft_helpers
    with _nft_helpers_lock:
        if _nft_helpers is None:
            _nft_helpers = NftHelpers()
        return _nft_helpers
