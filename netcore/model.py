"""Frozen value objects of the engine: networks, sandboxes, endpoints, port bindings.

These are plain data. The registry holds them, the store persists them (`to_dict`/`from_dict`),
the nft renderer and the DNS view are pure functions of them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from .healthcheck import Healthcheck, healthcheck_from_dict
from .lineage import Lineage

IPv4Network = ipaddress.IPv4Network
IPv6Network = ipaddress.IPv6Network
IPv4Address = ipaddress.IPv4Address
IPv6Address = ipaddress.IPv6Address

Proto = Literal["tcp", "udp", "sctp"]

DEFAULT_DNS_TTL = 0  # sandboxes move and restart with new addresses: clients must not cache


@dataclass(frozen=True, slots=True)
class Subnet4:
    """The IPv4 side of a network: subnet, optional allocation range, gateway."""

    subnet: IPv4Network
    gateway: IPv4Address
    ip_range: IPv4Network | None = None


@dataclass(frozen=True, slots=True)
class Subnet6:
    """The IPv6 side of a dual-stack network."""

    subnet: IPv6Network
    gateway: IPv6Address
    ip_range: IPv6Network | None = None


@dataclass(frozen=True, slots=True)
class Network:
    """A user-defined bridge network (or the default `bridge`)."""

    id: str  # 64 hex
    name: str
    bridge: str  # Linux bridge device name, br-<id[:12]> unless given
    ipv4: Subnet4
    ipv6: Subnet6 | None = None
    internal: bool = False
    icc: bool = True  # traffic between sandboxes of this network
    masquerade: bool = True
    mtu: int | None = None
    dns_ttl: int = DEFAULT_DNS_TTL
    labels: tuple[tuple[str, str], ...] = ()
    options: tuple[tuple[str, str], ...] = ()
    driver: str = "bridge"  # or "overlay": global scope, spans every host of the cluster
    created: str = ""  # RFC 3339
    vni: int | None = None  # overlay networks: the VXLAN id, allocated once cluster-wide

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def scope(self) -> str:
        return "global" if self.driver == "overlay" else "local"


@dataclass(frozen=True, slots=True)
class PortBinding:
    """Docker's `-p [HOST_IP:]HOST_PORT:PORT[/proto]`."""

    container_port: int
    host_port: int
    proto: Proto = "tcp"
    host_ip: IPv4Address | None = None  # None: every address of the host namespace


# "remote": a sandbox of another host, known only by the names of its overlay endpoints.
SandboxMode = Literal["bridge", "none", "host", "container", "remote"]


@dataclass(frozen=True, slots=True)
class Sandbox:
    """A network namespace that endpoints attach to.

    `mode == "container"` shares the namespace of `joined_to` (another sandbox's id): same
    addresses, and both names resolve. `mode == "host"` is the daemon's own namespace, untouched.
    """

    id: str  # 64 hex
    name: str
    netns_path: str
    owned: bool  # the daemon created the namespace (and deletes it on remove)
    hostname: str = ""
    mode: SandboxMode = "bridge"
    joined_to: str | None = None
    dns: tuple[str, ...] = ()  # per-sandbox upstream servers
    dns_search: tuple[str, ...] | None = None  # None: the host's; ("." ,): none
    dns_options: tuple[str, ...] | None = None
    extra_hosts: tuple[tuple[str, str], ...] = ()  # (name, address)
    ports: tuple[PortBinding, ...] = ()
    resolv_conf_path: str = ""
    hosts_path: str = ""
    created: str = ""
    healthcheck: Healthcheck | None = None  # run by the daemon; None: no check
    labels: tuple[tuple[str, str], ...] = ()  # the caller's, sorted (e.g. dnsd-cni's owner)

    @property
    def short_id(self) -> str:
        return self.id[:12]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One sandbox attached to one network: a veth pair, addresses and names on that network."""

    id: str  # 64 hex
    network_id: str
    sandbox_id: str
    ifname: str  # inside the sandbox: eth0, eth1, ...
    host_ifname: str  # bridge side of the veth
    mac: str
    ipv4: IPv4Address
    ipv6: IPv6Address | None = None
    aliases: tuple[str, ...] = ()
    is_gateway: bool = False  # this endpoint's network gives the sandbox its default route
    # Docker's legacy links: (target sandbox id, alias); the alias names the target's address
    # on this network for this sandbox only.
    links: tuple[tuple[str, str], ...] = ()
    vtep: str = ""  # overlay networks: the underlay address of the host it lives on


RecordType = Literal["A", "AAAA", "CNAME", "SRV", "TXT"]


@dataclass(frozen=True, slots=True)
class Record:
    """A DNS record of a network that is not a sandbox (a VIP, a host service, an outside
    database): answered to the network's sandboxes like their names.

    `value` is the rdata in zone-file form, canonical (see dnsd.core.rdata); `ttl` None means
    the network's `dns_ttl`.
    """

    id: str  # 64 hex, derived from (network, name, type, value): one record, one id
    network_id: str
    name: str  # a DNS name without the trailing dot, as given
    type: RecordType
    value: str
    ttl: int | None = None
    created: str = ""


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Snapshot:
    """Everything the registry knows, at one revision: what DNS and nft read."""

    revision: int = 0
    networks: tuple[Network, ...] = ()
    sandboxes: tuple[Sandbox, ...] = ()
    endpoints: tuple[Endpoint, ...] = field(default=())
    records: tuple[Record, ...] = ()
    # The registry's note of what changed since the snapshot it notified before (not part
    # of the value: equal snapshots may have different ones).
    lineage: Lineage | None = field(default=None, compare=False, repr=False)


# --- (de)serialisation for the store: plain JSON types only ---

_ADDRESS_TYPES = (IPv4Address, IPv6Address, IPv4Network, IPv6Network)


# Fields a cluster added, written only when set: a single host's rows stay as they were.
_CLUSTER_ONLY = {"vni": None, "vtep": ""}
# Likewise the fields of features few use (Docker's legacy links, health checks).
_WRITTEN_WHEN_SET = {**_CLUSTER_ONLY, "links": (), "healthcheck": None}
# A sandbox's labels came later than a network's (always written): only when it has some.
_SANDBOX_WRITTEN_WHEN_SET = {**_WRITTEN_WHEN_SET, "labels": ()}


def to_dict(obj: Any) -> dict[str, Any]:
    """A JSON-ready dict of a model object (addresses as strings, tuples as lists)."""
    data = asdict(obj)
    when_set = _SANDBOX_WRITTEN_WHEN_SET if isinstance(obj, Sandbox) else _WRITTEN_WHEN_SET
    for key, unset in when_set.items():
        if key in data and data[key] == unset:
            del data[key]
    return _jsonable(data)


def _jsonable(value: Any) -> Any:
    if isinstance(value, _ADDRESS_TYPES):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _pairs(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in value)


def _opt(parse: Any, value: Any) -> Any:
    return None if value is None else parse(value)


def network_from_dict(d: dict[str, Any]) -> Network:
    v4 = d["ipv4"]
    v6 = d.get("ipv6")
    return Network(
        **{k: d[k] for k in ("id", "name", "bridge")},
        ipv4=Subnet4(
            IPv4Network(v4["subnet"]),
            IPv4Address(v4["gateway"]),
            _opt(IPv4Network, v4.get("ip_range")),
        ),
        ipv6=None
        if v6 is None
        else Subnet6(
            IPv6Network(v6["subnet"]),
            IPv6Address(v6["gateway"]),
            _opt(IPv6Network, v6.get("ip_range")),
        ),
        internal=d.get("internal", False),
        icc=d.get("icc", True),
        masquerade=d.get("masquerade", True),
        mtu=d.get("mtu"),
        dns_ttl=d.get("dns_ttl", DEFAULT_DNS_TTL),
        labels=_pairs(d.get("labels", ())),
        options=_pairs(d.get("options", ())),
        driver=d.get("driver", "bridge"),
        created=d.get("created", ""),
        vni=d.get("vni"),
    )


def port_from_dict(d: dict[str, Any]) -> PortBinding:
    return PortBinding(
        container_port=int(d["container_port"]),
        host_port=int(d["host_port"]),
        proto=d.get("proto", "tcp"),
        host_ip=_opt(IPv4Address, d.get("host_ip")),
    )


def sandbox_from_dict(d: dict[str, Any]) -> Sandbox:
    known = {f.name for f in fields(Sandbox)}
    kw = {k: v for k, v in d.items() if k in known}
    for key in ("dns",):
        kw[key] = tuple(kw.get(key, ()))
    for key in ("dns_search", "dns_options"):
        kw[key] = _opt(tuple, kw.get(key))
    kw["extra_hosts"] = _pairs(kw.get("extra_hosts", ()))
    kw["labels"] = _pairs(kw.get("labels", ()))  # absent in old rows
    kw["ports"] = tuple(port_from_dict(p) for p in kw.get("ports", ()))
    kw["healthcheck"] = healthcheck_from_dict(kw.get("healthcheck"))  # absent in old rows
    return Sandbox(**kw)


def endpoint_from_dict(d: dict[str, Any]) -> Endpoint:
    known = {f.name for f in fields(Endpoint)}
    kw = {k: v for k, v in d.items() if k in known}
    kw["ipv4"] = IPv4Address(kw["ipv4"])
    kw["ipv6"] = _opt(IPv6Address, kw.get("ipv6"))
    kw["aliases"] = tuple(kw.get("aliases", ()))
    kw["links"] = _pairs(kw.get("links", ()))
    return Endpoint(**kw)


def record_from_dict(d: dict[str, Any]) -> Record:
    known = {f.name for f in fields(Record)}
    return Record(**{k: v for k, v in d.items() if k in known})


def remote_endpoint_from_dict(d: dict[str, Any]) -> tuple[Endpoint, Sandbox]:
    """What another host published for one overlay endpoint: the endpoint, and a stand-in for
    its sandbox that carries only its names (no namespace here, no files, no listener)."""
    sandbox = d["sandbox"]
    return endpoint_from_dict(d["endpoint"]), Sandbox(
        id=sandbox["id"],
        name=sandbox["name"],
        netns_path="",
        owned=False,
        hostname=sandbox.get("hostname", ""),
        mode="remote",
    )
