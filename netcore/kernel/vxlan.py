"""VXLAN devices, their FDB and neighbour entries, through iproute2 (`ip`, `bridge`).

One `ip -batch` / `bridge -batch` process per change set, not one per entry. Runs in the
daemon's namespace, like the rest of the host side.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable

from ..errors import NetlinkError
from ..model import Network

VXLAN_PORT = 4789


def _run(*args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise NetlinkError(f"{' '.join(args[:3])}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True).returncode == 0


def ensure_vxlan(device: str, network: Network, local: str) -> bool:
    """Create the VXLAN device of an overlay if missing, enslaved to its bridge; True when it
    was created."""
    created = False
    if not link_exists(device):
        _run(
            "ip", "link", "add", device, "type", "vxlan", "id", str(network.vni),
            "local", local, "dstport", str(VXLAN_PORT), "nolearning", "proxy",
        )  # fmt: skip
        created = True
    mtu = ["mtu", str(network.mtu)] if network.mtu else []
    _run("ip", "link", "set", device, "master", network.bridge, *mtu, "up")
    return created


def underlay_mtu(address: str) -> int:
    """The MTU of the link that holds `address` (the VXLAN packets leave through it)."""
    for link in json.loads(_run("ip", "-j", "addr", "show") or "[]"):
        if any(a.get("local") == address for a in link.get("addr_info", [])):
            return int(link.get("mtu", 1500))
    raise NetlinkError(
        f"no interface of this host has the address {address}: give --advertise-addr an "
        "address of the underlay"
    )


def sync_peers(device: str, peers: Iterable[tuple[str, str, str]]) -> bool:
    """Make the device's static FDB and permanent neighbour entries exactly `peers`
    ((mac, ip, vtep) triples). False when the device does not exist (yet)."""
    if not link_exists(device):
        return False
    want_fdb = {(mac.lower(), vtep) for mac, _, vtep in peers}
    want_neigh = {(ip, mac.lower()) for mac, ip, _ in peers}
    have_fdb = {
        (e["mac"].lower(), e["dst"])
        for e in json.loads(_run("bridge", "-j", "fdb", "show", "dev", device) or "[]")
        if e.get("dst") and e.get("mac") != "00:00:00:00:00:00"
    }
    have_neigh = {
        (e["dst"], e.get("lladdr", "").lower())
        for e in json.loads(_run("ip", "-j", "neigh", "show", "dev", device) or "[]")
        if "PERMANENT" in e.get("state", [])
    }
    fdb = [f"fdb del {mac} dev {device} dst {vtep}" for mac, vtep in have_fdb - want_fdb]
    fdb += [f"fdb replace {mac} dev {device} dst {vtep} self permanent" for mac, vtep in want_fdb]
    neigh = [f"neigh del {ip} dev {device}" for ip, _ in have_neigh - want_neigh]
    neigh += [
        f"neigh replace {ip} lladdr {mac} dev {device} nud permanent" for ip, mac in want_neigh
    ]
    if fdb:
        _run("bridge", "-force", "-batch", "-", stdin="\n".join(fdb) + "\n")
    if neigh:
        _run("ip", "-force", "-batch", "-", stdin="\n".join(neigh) + "\n")
    return True
