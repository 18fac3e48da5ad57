"""What a CNI runtime hands the plugin (environment, stdin), read once into frozen data.

Pure: no daemon, no kernel. Every refusal is a `CniError` with the spec's well-known code and
a message naming the variable or field to fix.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netcore.errors import InvalidArgument
from netcore.ipam.mac import validate_mac
from netcore.names import validate_dns_name, validate_ifname, validate_object_name

from ..config import DEFAULT_API_SOCKET

# Spec versions whose results we can shape; 0.3.x and 0.4.0 share one layout, 1.0.0 another.
# 1.1.0 adds STATUS and GC; its results have 1.0.0's layout.
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
DEFAULT_VERSION = "1.0.0"  # what VERSION answers with when stdin names none
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
NETWORK_WIDE = ("STATUS", "GC")  # about the network, not one container: no CNI_CONTAINERID

# Well-known error codes (CNI spec, "Error codes 1-99 must not be used other than as specified").
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
PLUGIN_NOT_AVAILABLE = 50  # STATUS: ADD cannot be served now
# Ours (100 and up): the daemon refused the change, or what CHECK found is not what ADD made.
DAEMON_REFUSED = 100
CHECK_FAILED = 101


class CniError(Exception):
    """The spec's error result: `code`, a short `msg`, and `details` that say what to do."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(f"{msg}: {details}" if details else msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, cni_version: str) -> dict[str, Any]:
        body: dict[str, Any] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            body["details"] = self.details
        return body


@dataclass(frozen=True, slots=True)
class NetConf:
    """The network configuration on stdin, with the runtime's capability arguments."""

    cni_version: str
    name: str  # the CNI network name
    network: str  # the dnsd network to join (`network`, else `name`)
    socket: str
    create: bool  # create `network` with the daemon's defaults when it does not exist
    aliases: tuple[str, ...] = ()  # runtimeConfig.aliases for this network
    publish: tuple[str, ...] = ()  # runtimeConfig.portMappings as `[IP:]HOST:PORT/PROTO`
    ipv4: str | None = None  # runtimeConfig.ips or CNI_ARGS IP=
    ipv6: str | None = None
    mac: str | None = None  # runtimeConfig.mac or CNI_ARGS MAC=
    prev_result: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Invocation:
    """One run of the plugin: the command, its environment, and the configuration."""

    command: str
    cni_version: str  # of the configuration, or DEFAULT_VERSION (for VERSION without one)
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: tuple[tuple[str, str], ...] = ()  # CNI_ARGS
    conf: NetConf | None = None  # None only for VERSION
    # GC: the attachments (container id, interface) the runtime still has on this network
    valid_attachments: frozenset[tuple[str, str]] = frozenset()

    @property
    def sandbox_name(self) -> str:
        """The runtime's name for the container (K8S_POD_NAME, which Podman also sets) when
        it is a valid sandbox name, else the first 12 characters of the container id."""
        name = dict(self.args).get("K8S_POD_NAME", "")
        try:
            return validate_object_name(name, "K8S_POD_NAME")
        except InvalidArgument:
            return self.container_id[:12]


def parse_cni_args(text: str) -> tuple[tuple[str, str], ...]:
    """`CNI_ARGS`: `KEY=VALUE` pairs separated by `;` (empty parts ignored)."""
    out = []
    for part in text.split(";"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise CniError(INVALID_ENVIRONMENT, "invalid CNI_ARGS", f"{part!r} is not KEY=VALUE")
        out.append((key, value))
    return tuple(out)


def parse_invocation(env: Mapping[str, str], stdin: bytes) -> Invocation:
    """Read the environment and stdin the way the spec defines them."""
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(
            INVALID_ENVIRONMENT,
            "invalid CNI_COMMAND",
            f"{command!r} is not one of {', '.join(COMMANDS)}",
        )
    if command == "VERSION":
        version = _version_of(stdin) if stdin.strip() else DEFAULT_VERSION
        return Invocation(command, version)
    conf_data = _decode(stdin)
    conf = parse_conf(conf_data, parse_cni_args(env.get("CNI_ARGS", "")))
    since = {"CHECK": (0, 4, 0), "STATUS": (1, 1, 0), "GC": (1, 1, 0)}.get(command, (0,))
    if _version_tuple(conf.cni_version) < since:
        raise CniError(
            INCOMPATIBLE_VERSION,
            f"config version does not allow {command}",
            f"cniVersion {conf.cni_version}: {command} needs {'.'.join(map(str, since))} or later",
        )
    if command in NETWORK_WIDE:
        attachments = valid_attachments(conf_data) if command == "GC" else frozenset()
        return Invocation(command, conf.cni_version, conf=conf, valid_attachments=attachments)
    missing = [k for k in ("CNI_CONTAINERID", "CNI_IFNAME") if not env.get(k)]
    if command != "DEL" and not env.get("CNI_NETNS"):
        missing.append("CNI_NETNS")  # DEL may come after the namespace is gone
    if missing:
        raise CniError(INVALID_ENVIRONMENT, "missing environment", ", ".join(missing))
    container_id = env["CNI_CONTAINERID"]
    if not container_id[0].isalnum() or not all(c.isalnum() or c in "_.-" for c in container_id):
        raise CniError(
            INVALID_ENVIRONMENT,
            "invalid CNI_CONTAINERID",
            f"{container_id!r}: use letters, digits, '_', '.', '-', starting alphanumeric",
        )
    try:
        ifname = validate_ifname(env["CNI_IFNAME"], "CNI_IFNAME")
    except InvalidArgument as exc:
        raise CniError(INVALID_ENVIRONMENT, "invalid CNI_IFNAME", str(exc)) from None
    netns = env.get("CNI_NETNS", "")
    if netns and (not netns.startswith("/") or "/../" in netns + "/"):
        raise CniError(
            INVALID_ENVIRONMENT, "invalid CNI_NETNS", f"{netns!r}: give an absolute path"
        )
    return Invocation(
        command,
        conf.cni_version,
        container_id,
        netns,
        ifname,
        parse_cni_args(env.get("CNI_ARGS", "")),
        conf,
    )


def parse_conf(data: Mapping[str, Any], args: tuple[tuple[str, str], ...] = ()) -> NetConf:
    """The plugin's network configuration (with `runtimeConfig` and CNI_ARGS folded in)."""
    version = _string(data, "cniVersion", required=True)
    if version not in SUPPORTED_VERSIONS:
        raise CniError(
            INCOMPATIBLE_VERSION,
            "incompatible CNI version",
            f"cniVersion {version!r}: this plugin supports {', '.join(SUPPORTED_VERSIONS)}",
        )
    name = _string(data, "name", required=True)
    network = _string(data, "network") or name
    try:
        validate_object_name(network, "network")
    except InvalidArgument as exc:
        raise _invalid(str(exc)) from None
    socket = _string(data, "socket") or DEFAULT_API_SOCKET
    if not socket.startswith("/"):
        raise _invalid(f"socket: {socket!r} is not an absolute path")
    create = data.get("create", False)
    if not isinstance(create, bool):
        raise _invalid(f"create: {create!r} is not true or false")
    prev = data.get("prevResult")
    if prev is not None and not isinstance(prev, dict):
        raise _invalid("prevResult: must be an object (the previous plugin's result)")
    runtime = data.get("runtimeConfig") or {}
    if not isinstance(runtime, dict):
        raise _invalid("runtimeConfig: must be an object")
    ipv4, ipv6 = _addresses(runtime.get("ips"), dict(args).get("IP"))
    return NetConf(
        cni_version=version,
        name=name,
        network=network,
        socket=socket,
        create=create,
        aliases=_aliases(runtime.get("aliases"), name, network),
        publish=_port_mappings(runtime.get("portMappings")),
        ipv4=ipv4,
        ipv6=ipv6,
        mac=_mac(runtime.get("mac") or dict(args).get("MAC")),
        prev_result=prev,
    )


def valid_attachments(data: Mapping[str, Any]) -> frozenset[tuple[str, str]]:
    """GC's `cni.dev/valid-attachments` (libcni also sends it as `cni.dev/attachments`)."""
    items = data.get("cni.dev/valid-attachments", data.get("cni.dev/attachments"))
    if items is None:
        raise _invalid("cni.dev/valid-attachments: GC needs the list of attachments to keep")
    if not isinstance(items, list):
        raise _invalid("cni.dev/valid-attachments: must be a list")
    out = set()
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("containerID"), str):
            raise _invalid(f"cni.dev/valid-attachments: {item!r} is not {{containerID, ifname}}")
        ifname = item.get("ifname", "")
        if not isinstance(ifname, str):
            raise _invalid(f"cni.dev/valid-attachments: ifname {ifname!r} is not a string")
        out.add((item["containerID"], ifname))
    return frozenset(out)


# --- pieces ---


def _decode(stdin: bytes) -> dict[str, Any]:
    try:
        data = json.loads(stdin)
    except ValueError as exc:
        raise CniError(
            DECODE_FAILURE, "cannot decode the network configuration", str(exc)
        ) from None
    if not isinstance(data, dict):
        raise CniError(DECODE_FAILURE, "cannot decode the network configuration", "not an object")
    return data


def _version_of(stdin: bytes) -> str:
    version = _decode(stdin).get("cniVersion") or DEFAULT_VERSION
    return version if isinstance(version, str) else DEFAULT_VERSION


def error_version(stdin: bytes) -> str:
    """The version an error result is written in: the configuration's, when it is readable
    and supported (never raises)."""
    try:
        version = _version_of(stdin)
    except CniError:
        return DEFAULT_VERSION
    return version if version in SUPPORTED_VERSIONS else DEFAULT_VERSION


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _invalid(details: str) -> CniError:
    return CniError(INVALID_CONFIG, "invalid network configuration", details)


def _string(data: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise _invalid(f"{key}: required")
        return ""
    if not isinstance(value, str):
        raise _invalid(f"{key}: {value!r} is not a string")
    return value


def _aliases(value: Any, *networks: str) -> tuple[str, ...]:
    """Podman's `{"<network>": ["alias", ...]}`, keyed by the CNI or the dnsd network name."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise _invalid('runtimeConfig.aliases: use {"<network>": ["alias", ...]}')
    out: list[str] = []
    for network in dict.fromkeys(networks):
        items = value.get(network) or []
        if not isinstance(items, list):
            raise _invalid(f"runtimeConfig.aliases.{network}: must be a list of names")
        for alias in items:
            try:
                out.append(validate_dns_name(alias, f"runtimeConfig.aliases.{network}"))
            except InvalidArgument as exc:
                raise _invalid(str(exc)) from None
    return tuple(dict.fromkeys(out))


def _port_mappings(value: Any) -> tuple[str, ...]:
    """The portMappings capability, `[{hostPort, containerPort, protocol, hostIP}]`."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _invalid("runtimeConfig.portMappings: must be a list")
    out = []
    for item in value:
        where = f"runtimeConfig.portMappings: {item!r}"
        if not isinstance(item, dict):
            raise _invalid(f"{where} is not an object")
        host, container = item.get("hostPort"), item.get("containerPort")
        if not all(isinstance(p, int) and 0 < p < 65536 for p in (host, container)):
            raise _invalid(f"{where}: hostPort and containerPort must be 1-65535")
        proto = str(item.get("protocol") or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise _invalid(f"{where}: protocol must be tcp, udp or sctp")
        host_ip = item.get("hostIP") or ""
        if host_ip:
            try:
                if ipaddress.ip_address(host_ip).version != 4:
                    raise ValueError
            except ValueError:
                raise _invalid(f"{where}: hostIP must be an IPv4 address") from None
        out.append(f"{host_ip + ':' if host_ip else ''}{host}:{container}/{proto}")
    return tuple(out)


def _addresses(ips: Any, arg_ip: str | None) -> tuple[str | None, str | None]:
    """A requested IPv4 and IPv6 address from the `ips` capability or CNI_ARGS `IP=`."""
    if ips is not None and not isinstance(ips, list):
        raise _invalid("runtimeConfig.ips: must be a list of addresses")
    items = list(ips or []) + ([arg_ip] if arg_ip else [])
    found: dict[int, str] = {}
    for item in items:
        try:
            address = ipaddress.ip_interface(item).ip if isinstance(item, str) else None
        except ValueError:
            address = None
        if address is None:
            raise _invalid(f"ips: {item!r} is not an IP address")
        found.setdefault(address.version, str(address))
    return found.get(4), found.get(6)


def _mac(value: Any) -> str | None:
    if value in (None, ""):
        return None
    try:
        return validate_mac(value, "mac")
    except InvalidArgument as exc:
        raise _invalid(str(exc)) from None
