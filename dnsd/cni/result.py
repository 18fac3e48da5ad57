"""The CNI Result of an attachment, shaped for the spec version the runtime speaks.

Pure: built from the daemon's description of the endpoint (`GET /sandboxes/{name}`, one
entry of its `Networks`) and the sandbox's resolv.conf text. A `prevResult` from plugins
earlier in the chain is kept whole; ours is appended to it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..sandbox_files.resolvconf import parse as parse_resolv_conf

EMBEDDED_DNS = "127.0.0.11"


@dataclass(frozen=True, slots=True)
class Dns:
    nameservers: tuple[str, ...] = (EMBEDDED_DNS,)
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    @classmethod
    def from_resolv_conf(cls, text: str) -> Dns:
        """What dnsd wrote for the sandbox (its nameserver is 127.0.0.11 on a network)."""
        parsed = parse_resolv_conf(text)
        return cls(parsed.nameservers or (EMBEDDED_DNS,), parsed.search, parsed.options)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"nameservers": list(self.nameservers)}
        if self.search:
            out["search"] = list(self.search)
        if self.options:
            out["options"] = list(self.options)
        return out


def is_legacy(cni_version: str) -> bool:
    """0.3.x and 0.4.0 results carry `version` in every `ips` entry; 1.0.0 dropped it."""
    return cni_version.split(".")[0] == "0"


def attachment_result(
    cni_version: str,
    *,
    endpoint: Mapping[str, Any],
    netns: str,
    dns: Dns,
    host_mac: str | None = None,
    prev_result: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The Result of ADD: the host veth, the sandbox interface (with the namespace), its
    addresses, the default route when this network gives it, and 127.0.0.11 as resolver."""
    prev = copy.deepcopy(dict(prev_result or {}))
    interfaces = list(prev.get("interfaces") or [])
    host: dict[str, Any] = {"name": endpoint["HostInterfaceName"]}
    if host_mac:
        host["mac"] = host_mac
    interfaces.append(host)
    interfaces.append(
        {"name": endpoint["InterfaceName"], "mac": endpoint["MacAddress"], "sandbox": netns}
    )
    index = len(interfaces) - 1
    ips = [*(prev.get("ips") or []), *_ips(endpoint, index)]
    routes = [*(prev.get("routes") or []), *_routes(endpoint)]
    result = {
        **prev,
        "cniVersion": cni_version,
        "interfaces": interfaces,
        "ips": ips,
        "routes": routes,
        "dns": _merge_dns(dns.to_json(), prev.get("dns") or {}),
    }
    return shape_for(cni_version, result)


def shape_for(cni_version: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """`result` in the layout of `cni_version`: `ips[].version` present before 1.0.0 only."""
    out = dict(result)
    out["cniVersion"] = cni_version
    shaped = []
    for entry in out.get("ips") or []:
        entry = dict(entry)
        if is_legacy(cni_version):
            entry.setdefault("version", "6" if ":" in entry["address"] else "4")
        else:
            entry.pop("version", None)
        shaped.append(entry)
    if "ips" in out:
        out["ips"] = shaped
    return out


def _ips(endpoint: Mapping[str, Any], index: int) -> list[dict[str, Any]]:
    out = [
        {
            "address": f"{endpoint['IPAddress']}/{endpoint['IPPrefixLen']}",
            "gateway": endpoint["Gateway"],
            "interface": index,
        }
    ]
    if endpoint.get("GlobalIPv6Address"):
        entry = {
            "address": f"{endpoint['GlobalIPv6Address']}/{endpoint['GlobalIPv6PrefixLen']}",
            "interface": index,
        }
        if endpoint.get("IPv6Gateway"):
            entry["gateway"] = endpoint["IPv6Gateway"]
        out.append(entry)
    return out


def _routes(endpoint: Mapping[str, Any]) -> list[dict[str, str]]:
    """The default route goes through the network that gives it (the daemon's choice)."""
    if not endpoint.get("DefaultRoute"):
        return []
    out = [{"dst": "0.0.0.0/0", "gw": endpoint["Gateway"]}]
    if endpoint.get("GlobalIPv6Address") and endpoint.get("IPv6Gateway"):
        out.append({"dst": "::/0", "gw": endpoint["IPv6Gateway"]})
    return out


def _merge_dns(ours: dict[str, Any], prev: Mapping[str, Any]) -> dict[str, Any]:
    """Ours first (127.0.0.11 answers the network's names and forwards the rest); what an
    earlier plugin set is kept after it."""
    merged = {**prev, **ours}
    for key in ("nameservers", "search", "options"):
        values = _unique([*ours.get(key, []), *(prev.get(key) or [])])
        if values:
            merged[key] = values
    return merged


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))
