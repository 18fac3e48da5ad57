"""What callers ask the engine for, validated once at the edge (API, CLI, tests).

Docker's option names (`com.docker.network.bridge.*`) are understood here, so every caller
shares one reading of them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidArgument
from .healthcheck import Healthcheck
from .model import PortBinding
from .names import validate_dns_name, validate_ifname, validate_object_name

OPT_PREFIX = "com.docker.network.bridge."
OPT_ICC = OPT_PREFIX + "enable_icc"
OPT_MASQ = OPT_PREFIX + "enable_ip_masquerade"
OPT_NAME = OPT_PREFIX + "name"
OPT_MTU = "com.docker.network.driver.mtu"
OPT_BRIDGE_MTU = OPT_PREFIX + "mtu"
OPT_INTERNAL = "com.docker.network.internal"
OPT_DNS_TTL = "dnsd.dns_ttl"
OPT_DNS_CACHE = "dnsd.dns_cache"  # false: this network's sandboxes bypass the forward cache
OPT_HOST_NAMES = "dnsd.host_names"  # false: no host.docker.internal on the network
OPT_IFNAME = "com.docker.network.endpoint.ifname"  # an endpoint DriverOpt (Docker 26+)


@dataclass(frozen=True, slots=True)
class NetworkRequest:
    name: str
    subnet: str | None = None
    ip_range: str | None = None
    gateway: str | None = None
    ipv6: bool = False
    subnet6: str | None = None
    ip_range6: str | None = None
    gateway6: str | None = None
    internal: bool = False
    icc: bool = True
    masquerade: bool = True
    mtu: int | None = None
    bridge: str | None = None
    dns_ttl: int | None = None
    labels: tuple[tuple[str, str], ...] = ()
    options: tuple[tuple[str, str], ...] = ()
    driver: str = "bridge"  # "overlay": global, spans the hosts of a cluster store

    @classmethod
    def build(
        cls,
        name: str,
        *,
        options: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> NetworkRequest:
        """A request with Docker's bridge options folded into the typed fields."""
        options = dict(options or {})
        for key, value in options.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidArgument("option keys and values must be strings", field="Options")
        if OPT_ICC in options:
            kw["icc"] = _bool_option(options[OPT_ICC], OPT_ICC)
        if OPT_MASQ in options:
            kw["masquerade"] = _bool_option(options[OPT_MASQ], OPT_MASQ)
        if OPT_INTERNAL in options:
            kw["internal"] = _bool_option(options[OPT_INTERNAL], OPT_INTERNAL)
        for key in (OPT_MTU, OPT_BRIDGE_MTU):
            if key in options:
                kw["mtu"] = _int_option(options[key], key, 68, 65535)
        if OPT_NAME in options:
            kw["bridge"] = options[OPT_NAME]
        if OPT_DNS_CACHE in options:
            _bool_option(options[OPT_DNS_CACHE], OPT_DNS_CACHE)  # kept in `options`, checked here
        if OPT_DNS_TTL in options:
            kw["dns_ttl"] = _int_option(options[OPT_DNS_TTL], OPT_DNS_TTL, 0, 2**31 - 1)
        if OPT_HOST_NAMES in options:
            _bool_option(options[OPT_HOST_NAMES], OPT_HOST_NAMES)  # kept in `options`, checked here
        req = cls(
            name=name,
            options=tuple(sorted(options.items())),
            labels=tuple(sorted((labels or {}).items())),
            **kw,
        )
        req.validate()
        return req

    def validate(self) -> None:
        validate_object_name(self.name, "Name")
        if self.bridge is not None:
            validate_ifname(self.bridge, OPT_NAME)
        if self.driver not in ("bridge", "overlay"):
            raise InvalidArgument(
                f"unknown driver {self.driver!r}: use bridge or overlay", field="Driver"
            )
        if self.mtu is not None and not 68 <= self.mtu <= 65535:
            raise InvalidArgument("must be between 68 and 65535", field="mtu")
        _check_labels(self.labels)


def _check_labels(labels: tuple[tuple[str, str], ...]) -> None:
    for key, value in labels:
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            raise InvalidArgument(
                "label keys (not empty) and values must be strings", field="Labels"
            )


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    aliases: tuple[str, ...] = ()
    ipv4: str | None = None
    ipv6: str | None = None
    mac: str | None = None
    ifname: str | None = None  # name inside the sandbox (a CNI runtime's CNI_IFNAME); None: ethN
    links: tuple[tuple[str, str], ...] = ()  # (target sandbox ref, alias); see parse_links

    def __post_init__(self) -> None:
        for alias in self.aliases:
            validate_dns_name(alias, "Aliases")
        for _, alias in self.links:
            validate_dns_name(alias, "Links")
        if self.ifname is not None:
            validate_ifname(self.ifname, OPT_IFNAME)
        if self.ipv4 is not None:
            _address(self.ipv4, 4, "IPv4Address")
        if self.ipv6 is not None:
            _address(self.ipv6, 6, "IPv6Address")


@dataclass(frozen=True, slots=True)
class SandboxRequest:
    name: str
    netns: str | None = None  # adopt this namespace; None: create /run/netns/<name>
    hostname: str = ""
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] | None = None
    dns_options: tuple[str, ...] | None = None
    extra_hosts: tuple[tuple[str, str], ...] = ()
    ports: tuple[PortBinding, ...] = ()
    network_mode: str = ""  # "", "none", "host", "container:<ref>", or a network to join
    connect: ConnectRequest = field(default_factory=ConnectRequest)
    healthcheck: Healthcheck | None = None  # parsed by netcore.healthcheck.parse_healthcheck
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        validate_object_name(self.name, "Name")
        _check_labels(self.labels)
        if self.hostname:
            validate_dns_name(self.hostname, "Hostname")
        if self.netns is not None and (
            not isinstance(self.netns, str)
            or not self.netns.startswith("/")
            or "/../" in self.netns + "/"
        ):
            raise InvalidArgument("must be an absolute path without '..'", field="NetNS")
        for server in self.dns:
            _address(server, None, "Dns")
        for domain in self.dns_search or ():
            if domain != ".":
                validate_dns_name(domain, "DnsSearch")
        for option in self.dns_options or ():
            if not isinstance(option, str) or not option or any(c.isspace() for c in option):
                raise InvalidArgument(f"invalid resolver option {option!r}", field="DnsOptions")
        for host, address in self.extra_hosts:
            validate_dns_name(host, "ExtraHosts")
            _address(address, None, "ExtraHosts")
        seen: set[tuple[str | None, int, str]] = set()
        for port in self.ports:
            key = (str(port.host_ip) if port.host_ip else None, port.host_port, port.proto)
            if key in seen:
                raise InvalidArgument(
                    f"host port {port.host_port}/{port.proto} given twice", field="PortBindings"
                )
            seen.add(key)


def parse_links(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Docker's `["target:alias"]` (or `"target"`, aliased by its own name) as pairs."""
    out: list[tuple[str, str]] = []
    for value in values:
        target, _, alias = value.partition(":")
        target = target.lstrip("/")  # Docker also writes "/target:/linker/alias"
        alias = alias.rpartition("/")[2] or target
        if not target:
            raise InvalidArgument(f"{value!r}: use TARGET[:ALIAS]", field="Links")
        out.append((target, alias))
    return tuple(dict.fromkeys(out))


def parse_port_bindings(value: Any) -> tuple[PortBinding, ...]:
    """Docker's `{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}` (or our list form)."""
    if value in (None, {}):
        return ()
    if not isinstance(value, Mapping):
        raise InvalidArgument(
            'must be an object like {"80/tcp": [{"HostPort": "8080"}]}', field="PortBindings"
        )
    out: list[PortBinding] = []
    for key, targets in value.items():
        port_s, _, proto = str(key).partition("/")
        proto = proto or "tcp"
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"unknown protocol {proto!r} in {key!r}", field="PortBindings")
        container_port = _int_option(port_s, "PortBindings", 1, 65535)
        for target in targets or [{}]:
            if not isinstance(target, Mapping):
                raise InvalidArgument(f"binding of {key!r} must be an object", field="PortBindings")
            host_port_s = target.get("HostPort") or port_s
            host_ip = target.get("HostIp") or None
            out.append(
                PortBinding(
                    container_port=container_port,
                    host_port=_int_option(str(host_port_s), "PortBindings", 1, 65535),
                    proto=proto,  # type: ignore[arg-type]
                    host_ip=None
                    if host_ip in (None, "0.0.0.0")
                    else ipaddress.IPv4Address(_address(host_ip, 4, "PortBindings")),
                )
            )
    return tuple(out)


def _address(value: object, version: int | None, field: str) -> str:
    try:
        addr = ipaddress.ip_address(value)  # type: ignore[arg-type]
    except ValueError:
        raise InvalidArgument(f"{value!r} is not an IP address", field=field) from None
    if version is not None and addr.version != version:
        raise InvalidArgument(f"{value!r} is not an IPv{version} address", field=field)
    return str(addr)


def dns_cache_enabled(options: tuple[tuple[str, str], ...]) -> bool:
    """A network's `dnsd.dns_cache` option (default true)."""
    value = dict(options).get(OPT_DNS_CACHE)
    return True if value is None else _bool_option(value, OPT_DNS_CACHE)


def host_names_enabled(options: tuple[tuple[str, str], ...]) -> bool:
    """A network's `dnsd.host_names` option (default true): host.docker.internal and
    host.containers.internal answer its gateway."""
    value = dict(options).get(OPT_HOST_NAMES)
    return True if value is None else _bool_option(value, OPT_HOST_NAMES)


def _bool_option(value: str, key: str) -> bool:
    low = str(value).lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise InvalidArgument(f"{value!r} is not a boolean (true/false)", field=key)


def _int_option(value: str, key: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{value!r} is not an integer", field=key) from None
    if not low <= number <= high:
        raise InvalidArgument(f"{number} is outside {low}..{high}", field=key)
    return number
