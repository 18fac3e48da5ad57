"""Docker's JSON shapes of networks, and ours of sandboxes, built from one registry snapshot.

Reads never touch the engine's live dicts: a `Snapshot` is immutable, so a view is consistent
even while a worker thread commits the next change.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netcore.errors import NetworkNotFound, SandboxNotFound
from netcore.model import Endpoint, Network, Sandbox, Snapshot
from netcore.registry import find_ref

API_VERSION = "1.41"  # what Debian's docker.io 20.10 speaks; newer clients negotiate down to it
MIN_API_VERSION = "1.24"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, what Docker shows for "never"


@dataclass(frozen=True, slots=True)
class BuiltinNetwork:
    """Docker's `host` and `none` networks: listed and inspectable, never created or removed."""

    name: str
    driver: str

    @property
    def id(self) -> str:
        # Fixed across restarts and daemons, so scripts may keep it.
        return hashlib.sha256(self.name.encode()).hexdigest()

    @property
    def mode(self) -> str:
        return self.name  # the sandbox mode that puts a sandbox "on" this network


BUILTIN_NETWORKS = (BuiltinNetwork("host", "host"), BuiltinNetwork("none", "null"))

AnyNetwork = Network | BuiltinNetwork


def all_networks(snapshot: Snapshot) -> list[AnyNetwork]:
    """Every network Docker would list, sorted by name."""
    return sorted([*snapshot.networks, *BUILTIN_NETWORKS], key=lambda n: n.name)


def find_network(snapshot: Snapshot, ref: str) -> AnyNetwork:
    """A network by full id, name, or unique id prefix (Docker's order)."""
    return find_ref(all_networks(snapshot), ref, NetworkNotFound, f"network {ref} not found")


def find_sandbox(snapshot: Snapshot, ref: str) -> Sandbox:
    local = (s for s in snapshot.sandboxes if s.mode != "remote")
    return find_ref(local, ref, SandboxNotFound, f"No such sandbox: {ref}")


# --- networks ---


def _ipam_entry(subnet: Any, gateway: Any, ip_range: Any) -> dict[str, str]:
    entry = {"Subnet": str(subnet), "Gateway": str(gateway)}
    if ip_range is not None:
        entry["IPRange"] = str(ip_range)
    return entry


def _endpoint_id(network_id: str, sandbox_id: str) -> str:
    return hashlib.sha256(f"{network_id}/{sandbox_id}".encode()).hexdigest()


def network_containers(snapshot: Snapshot, network: AnyNetwork) -> dict[str, dict[str, str]]:
    """Docker's `Containers` map: sandbox id -> its endpoint on this network."""
    names = {s.id: s.name for s in snapshot.sandboxes}
    if isinstance(network, BuiltinNetwork):
        return {
            s.id: {
                "Name": s.name,
                "EndpointID": _endpoint_id(network.id, s.id),
                "MacAddress": "",
                "IPv4Address": "",
                "IPv6Address": "",
            }
            for s in snapshot.sandboxes
            if s.mode == network.mode
        }
    out: dict[str, dict[str, str]] = {}
    for ep in snapshot.endpoints:
        if ep.network_id != network.id:
            continue
        out[ep.sandbox_id] = {
            "Name": names.get(ep.sandbox_id, ""),
            "EndpointID": ep.id,
            "MacAddress": ep.mac,
            "IPv4Address": f"{ep.ipv4}/{network.ipv4.subnet.prefixlen}",
            "IPv6Address": f"{ep.ipv6}/{network.ipv6.subnet.prefixlen}"
            if ep.ipv6 is not None and network.ipv6 is not None
            else "",
        }
    return out


def network_shape(snapshot: Snapshot, network: AnyNetwork) -> dict[str, Any]:
    """Docker's `GET /networks/{id}` body."""
    if isinstance(network, BuiltinNetwork):
        config: list[dict[str, str]] = []
        created, driver, internal, ipv6 = ZERO_TIME, network.driver, False, False
        options: dict[str, str] = {}
        labels: dict[str, str] = {}
    else:
        config = [_ipam_entry(network.ipv4.subnet, network.ipv4.gateway, network.ipv4.ip_range)]
        if network.ipv6 is not None:
            v6 = network.ipv6
            config.append(_ipam_entry(v6.subnet, v6.gateway, v6.ip_range))
        created, driver = network.created or ZERO_TIME, network.driver
        internal, ipv6 = network.internal, network.ipv6 is not None
        options, labels = dict(network.options), dict(network.labels)
    return {
        "Name": network.name,
        "Id": network.id,
        "Created": created,
        "Scope": "local" if isinstance(network, BuiltinNetwork) else network.scope,
        "Driver": driver,
        "EnableIPv6": ipv6,
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": internal,
        "Attachable": not isinstance(network, BuiltinNetwork) and network.scope == "global",
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": network_containers(snapshot, network),
        "Options": options,
        "Labels": labels,
    }


# --- sandboxes ---


def _endpoint_shape(network: Network, ep: Endpoint, names: Mapping[str, str]) -> dict[str, Any]:
    v6 = network.ipv6
    return {
        "NetworkID": network.id,
        "EndpointID": ep.id,
        "InterfaceName": ep.ifname,
        "HostInterfaceName": ep.host_ifname,
        "MacAddress": ep.mac,
        "IPAddress": str(ep.ipv4),
        "IPPrefixLen": network.ipv4.subnet.prefixlen,
        "Gateway": str(network.ipv4.gateway),
        "GlobalIPv6Address": str(ep.ipv6) if ep.ipv6 else "",
        "GlobalIPv6PrefixLen": v6.subnet.prefixlen if v6 and ep.ipv6 else 0,
        "IPv6Gateway": str(v6.gateway) if v6 and ep.ipv6 else "",
        "Aliases": list(ep.aliases),
        # Docker's EndpointSettings.Links: "target:alias", null when there are none.
        "Links": [f"{names.get(t, t[:12])}:{alias}" for t, alias in ep.links] or None,
        "DefaultRoute": ep.is_gateway,
    }


def ports_shape(sandbox: Sandbox) -> dict[str, list[dict[str, str]]]:
    """Docker's `PortBindings` form of a sandbox's published ports."""
    out: dict[str, list[dict[str, str]]] = {}
    for port in sandbox.ports:
        out.setdefault(f"{port.container_port}/{port.proto}", []).append(
            {"HostIp": str(port.host_ip) if port.host_ip else "", "HostPort": str(port.host_port)}
        )
    return out


def sandbox_shape(snapshot: Snapshot, sandbox: Sandbox) -> dict[str, Any]:
    """`GET /sandboxes/{id}`: the sandbox, its files, ports, and its networks with addresses.

    A `container:` sandbox shares its target's namespace, so it shows the target's networks.
    """
    by_id = {s.id: s for s in snapshot.sandboxes}
    names = {s.id: s.name for s in snapshot.sandboxes}
    networks = {n.id: n for n in snapshot.networks}
    owner = sandbox.joined_to if sandbox.mode == "container" and sandbox.joined_to else sandbox.id
    attached = {
        networks[ep.network_id].name: _endpoint_shape(networks[ep.network_id], ep, names)
        for ep in snapshot.endpoints
        if ep.sandbox_id == owner and ep.network_id in networks
    }
    joined = by_id.get(sandbox.joined_to or "")
    mode = f"container:{joined.name}" if sandbox.mode == "container" and joined else sandbox.mode
    return {
        "Id": sandbox.id,
        "Name": sandbox.name,
        "Created": sandbox.created or ZERO_TIME,
        "NetNS": sandbox.netns_path,
        "Owned": sandbox.owned,
        "NetworkMode": mode,
        "Hostname": sandbox.hostname,
        "Dns": list(sandbox.dns),
        "DnsSearch": None if sandbox.dns_search is None else list(sandbox.dns_search),
        "DnsOptions": None if sandbox.dns_options is None else list(sandbox.dns_options),
        "ExtraHosts": [f"{host}:{address}" for host, address in sandbox.extra_hosts],
        "Ports": ports_shape(sandbox),
        "ResolvConfPath": sandbox.resolv_conf_path,
        "HostsPath": sandbox.hosts_path,
        "Labels": dict(sandbox.labels),
        "Networks": dict(sorted(attached.items())),
    }


# --- daemon ---


def _go_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine
    )


def version_shape(version: str) -> dict[str, Any]:
    """Docker's `GET /version` body."""
    details = {
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
        "Arch": _go_arch(),
        "KernelVersion": platform.release(),
        "GitCommit": "",
        "GoVersion": f"python{platform.python_version()}",
        "BuildTime": "",
        "Experimental": "false",
    }
    return {
        "Platform": {"Name": f"dnsd {version}"},
        "Components": [{"Name": "Engine", "Version": version, "Details": details}],
        "Version": version,
        **{k: v for k, v in details.items() if k != "Experimental"},
    }
