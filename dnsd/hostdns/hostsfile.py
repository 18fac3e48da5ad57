"""`--host-hosts-file PATH`: the sandboxes' names for the host, as a hosts-format file.

For hosts with neither systemd-resolved nor a stub resolver to point at `--host-dns`: an
`/etc/hosts` include or dnsmasq's `--hostsdir` reads it. One line per address:
`<ip> <name>.<network> <hostname>.<network> <alias>.<network> <short id>.<network>` (and each
`.<domain>` with `--host-dns-domain`). Rewritten atomically, only when its text changes.
"""

from __future__ import annotations

import ipaddress
import logging

from netcore.model import Snapshot

from ..core.view import index_snapshot, sandbox_bases
from ..sandbox_files.managed import write_atomic

log = logging.getLogger(__name__)

HEADER = "# Written by dnsd (--host-hosts-file): sandbox names as <name>.<network>. Do not edit.\n"


def render_host_hosts(snapshot: Snapshot, domain: str | None = None) -> str:
    """The file's text for `snapshot`: networks by name, addresses in order."""
    index = index_snapshot(snapshot)
    suffix = f".{domain.rstrip('.')}" if domain else ""
    lines: list[tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address, str]] = []
    for network_id, endpoints in index.endpoints_by_network.items():
        network = index.networks[network_id]
        for endpoint in endpoints:
            owner = index.sandboxes[endpoint.sandbox_id]
            names: list[str] = []
            for member in (owner, *index.joiners.get(owner.id, ())):
                aliases = endpoint.aliases if member is owner else ()
                for base in sandbox_bases(member, aliases):
                    names.append(f"{base}.{network.name}")
                    if suffix:
                        names.append(f"{base}.{network.name}{suffix}")
            text = " ".join(dict.fromkeys(names))
            for address in (endpoint.ipv4, endpoint.ipv6):
                if address is not None:
                    lines.append((network.name, address, text))
    lines.sort(key=lambda line: (line[0], line[1].version, line[1]))
    return HEADER + "".join(f"{address}\t{names}\n" for _, address, names in lines)


class HostHostsFile:
    """Keeps one file current (call `update` with every snapshot; not thread-safe)."""

    def __init__(self, path: str, domain: str | None = None) -> None:
        self.path = path
        self.domain = domain
        self._written: str | None = None

    def update(self, snapshot: Snapshot) -> None:
        text = render_host_hosts(snapshot, self.domain)
        if text == self._written:
            return
        try:
            write_atomic(self.path, text)
        except Exception as exc:  # retried with the next change
            log.warning("write --host-hosts-file %s: %s", self.path, exc)
            return
        self._written = text
