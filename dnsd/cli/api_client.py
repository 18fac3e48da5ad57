"""A small blocking client of the registry API, over the unix socket (or TCP with a token).

The command line uses it; it has no dependency beyond the standard library so `dnsd network ls`
starts fast.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from netcore.requests import OPT_IFNAME

from ..config import DEFAULT_API_SOCKET


class ApiError(Exception):
    """The daemon refused a request; `message` is its `{"message"}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class DaemonUnreachable(ApiError):
    """Nothing answers at the address (daemon stopped, wrong socket, no permission)."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class ApiClient:
    """One request per connection: the CLI makes a handful, and the daemon stays simple."""

    def __init__(
        self,
        *,
        socket_path: str = DEFAULT_API_SOCKET,
        tcp: tuple[str, int] | None = None,
        token: str | None = None,
        timeout: float = 120.0,  # creating a network runs netlink and nft: allow slow hosts
    ) -> None:
        self.socket_path = socket_path
        self.tcp = tcp
        self.token = token
        self.timeout = timeout

    @property
    def address(self) -> str:
        return f"tcp://{self.tcp[0]}:{self.tcp[1]}" if self.tcp else f"unix://{self.socket_path}"

    def _connection(self) -> http.client.HTTPConnection:
        if self.tcp is not None:
            return http.client.HTTPConnection(self.tcp[0], self.tcp[1], timeout=self.timeout)
        return _UnixConnection(self.socket_path, self.timeout)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one request; the decoded JSON answer (None when empty); ApiError on >= 400."""
        if query:
            path += "?" + urllib.parse.urlencode(query)
        headers = {"Host": "localhost", "Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = self._connection()
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except OSError as exc:
            raise DaemonUnreachable(
                f"cannot reach dnsd at {self.address}: {exc.strerror or exc}; is the daemon "
                "running? (choose the socket with --api-socket or DNSD_SOCKET)"
            ) from None
        finally:
            conn.close()
        data = _decode(raw)
        if response.status >= 400:
            message = data.get("message") if isinstance(data, dict) else None
            raise ApiError(response.status, message or f"HTTP {response.status} {raw[:200]!r}")
        return data

    # --- networks ---

    def networks(self, filters: Mapping[str, list[str]] | None = None) -> list[dict[str, Any]]:
        return self.request("GET", "/networks", query=_filters(filters))

    def network(self, ref: str) -> dict[str, Any]:
        return self.request("GET", f"/networks/{_quote(ref)}")

    def create_network(
        self,
        name: str,
        *,
        subnet: str | None = None,
        ip_range: str | None = None,
        gateway: str | None = None,
        ipv6: bool = False,
        subnet6: str | None = None,
        ip_range6: str | None = None,
        gateway6: str | None = None,
        internal: bool = False,
        options: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        driver: str = "bridge",
    ) -> str:
        """Create a network (bridge, or overlay on a cluster); its id."""
        config = [
            {"Subnet": s or "", "IPRange": r or "", "Gateway": g or ""}
            for s, r, g in ((subnet, ip_range, gateway), (subnet6, ip_range6, gateway6))
            if s or r or g
        ]
        body = {
            "Name": name,
            "Driver": driver,
            "Attachable": driver == "overlay",
            "EnableIPv6": ipv6,
            "Internal": internal,
            "IPAM": {"Driver": "default", "Config": config},
            "Options": dict(options or {}),
            "Labels": dict(labels or {}),
        }
        return self.request("POST", "/networks/create", body)["Id"]

    def remove_network(self, ref: str) -> None:
        self.request("DELETE", f"/networks/{_quote(ref)}")

    def connect(
        self,
        network: str,
        sandbox: str,
        *,
        aliases: Sequence[str] = (),
        ipv4: str | None = None,
        ipv6: str | None = None,
        mac: str | None = None,
        ifname: str | None = None,
        links: Sequence[str] = (),
    ) -> None:
        """`ifname`: the interface name inside the sandbox (default: the next free ethN);
        `links`: Docker's legacy links, `TARGET[:ALIAS]`."""
        endpoint = _endpoint(aliases, ipv4, ipv6, mac, ifname, links)
        body = {"Container": sandbox, "EndpointConfig": endpoint}
        self.request("POST", f"/networks/{_quote(network)}/connect", body)

    def disconnect(self, network: str, sandbox: str, *, force: bool = False) -> None:
        body = {"Container": sandbox, "Force": force}
        self.request("POST", f"/networks/{_quote(network)}/disconnect", body)

    def records(self, network: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/networks/{_quote(network)}/records")

    def add_record(
        self, network: str, name: str, type_: str, value: str, *, ttl: int | None = None
    ) -> dict[str, Any]:
        body = {"Name": name, "Type": type_, "Value": value, "TTL": ttl}
        return self.request("POST", f"/networks/{_quote(network)}/records", body)

    def remove_record(
        self, network: str, name: str, type_: str, *, value: str | None = None
    ) -> None:
        path = f"/networks/{_quote(network)}/records/{_quote(name)}/{_quote(type_)}"
        self.request("DELETE", path, query={"value": value} if value is not None else None)

    def prune_networks(self, filters: Mapping[str, list[str]] | None = None) -> list[str]:
        answer = self.request("POST", "/networks/prune", query=_filters(filters))
        return list(answer.get("NetworksDeleted") or [])

    # --- sandboxes ---

    def sandboxes(self, filters: Mapping[str, list[str]] | None = None) -> list[dict[str, Any]]:
        return self.request("GET", "/sandboxes", query=_filters(filters))

    def sandbox(self, ref: str) -> dict[str, Any]:
        return self.request("GET", f"/sandboxes/{_quote(ref)}")

    def create_sandbox(
        self,
        name: str,
        *,
        netns: str | None = None,
        hostname: str = "",
        dns: Sequence[str] = (),
        dns_search: Sequence[str] | None = None,
        dns_options: Sequence[str] | None = None,
        extra_hosts: Sequence[str] = (),
        publish: Sequence[str] = (),
        network: str = "",
        aliases: Sequence[str] = (),
        ipv4: str | None = None,
        ipv6: str | None = None,
        mac: str | None = None,
        ifname: str | None = None,
        links: Sequence[str] = (),
        healthcheck: dict[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Create a sandbox (and join `network` at once); its id. `publish` items are
        `[IP:]HOST_PORT:PORT[/PROTO]`, `extra_hosts` items `NAME:ADDRESS`."""
        body: dict[str, Any] = {
            "Name": name,
            "NetNS": netns,
            "Hostname": hostname,
            "Dns": list(dns),
            "DnsSearch": None if dns_search is None else list(dns_search),
            "DnsOptions": None if dns_options is None else list(dns_options),
            "ExtraHosts": list(extra_hosts),
            "PortBindings": port_bindings(publish),
            "NetworkMode": network,
        }
        if labels:
            body["Labels"] = dict(labels)
        if aliases or ipv4 or ipv6 or mac or ifname or links:
            body["EndpointConfig"] = _endpoint(aliases, ipv4, ipv6, mac, ifname, links)
        if healthcheck is not None:
            body["Healthcheck"] = healthcheck
        return self.request("POST", "/sandboxes", body)["Id"]

    def remove_sandbox(self, ref: str) -> None:
        self.request("DELETE", f"/sandboxes/{_quote(ref)}")


def port_bindings(specs: Sequence[str]) -> dict[str, list[dict[str, str]]]:
    """`[IP:]HOST_PORT:PORT[/PROTO]` specs in Docker's PortBindings form (ValueError if bad)."""
    out: dict[str, list[dict[str, str]]] = {}
    for item in specs:
        spec, _, proto = item.partition("/")
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not all(parts[-2:]):
            raise ValueError(f"{item!r}: use [IP:]HOST_PORT:PORT[/tcp|udp|sctp]")
        binding = {"HostIp": parts[0] if len(parts) == 3 else "", "HostPort": parts[-2]}
        out.setdefault(f"{parts[-1]}/{proto or 'tcp'}", []).append(binding)
    return out


def _endpoint(
    aliases: Sequence[str],
    ipv4: str | None,
    ipv6: str | None,
    mac: str | None,
    ifname: str | None = None,
    links: Sequence[str] = (),
) -> dict[str, Any]:
    endpoint: dict[str, Any] = {
        "Aliases": list(aliases),
        "Links": list(links) or None,
        "IPAMConfig": {"IPv4Address": ipv4 or "", "IPv6Address": ipv6 or ""},
        "MacAddress": mac or "",
    }
    if ifname:
        endpoint["DriverOpts"] = {OPT_IFNAME: ifname}
    return endpoint


def _quote(ref: str) -> str:
    # A name like `../x` must stay one path segment, so the daemon refuses it, not the router.
    return urllib.parse.quote(ref, safe="")


def _filters(filters: Mapping[str, list[str]] | None) -> dict[str, str] | None:
    if not filters:
        return None
    return {"filters": json.dumps({k: dict.fromkeys(v, True) for k, v in filters.items()})}


def _decode(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
