"""What the plugin looks at in the kernel itself: the host veth's MAC for the Result, and for
CHECK the sandbox interface, its address, and the DNS listener at 127.0.0.11.

Work inside the sandbox runs on a thread that entered its namespace (`netcore.kernel.netns`),
so the plugin process itself never leaves the runtime's namespace.
"""

from __future__ import annotations

import secrets
import socket
from typing import Protocol

from dnslib import QTYPE, DNSRecord
from pyroute2 import IPRoute

from netcore.kernel.netns import open_socket, run_in

from .result import EMBEDDED_DNS

DNS_PROBE_TIMEOUT_S = 2.0  # the listener answers local names at once; no forwarding involved


class AttachmentProblem(Exception):
    """CHECK found the attachment different from what ADD made."""


class Probe(Protocol):
    def host_mac(self, ifname: str) -> str | None: ...

    def check(self, netns: str, ifname: str, address: str, name: str) -> None:
        """Raise AttachmentProblem unless `ifname` holds `address` in `netns` and the DNS
        listener there answers `name` with it."""
        ...


class KernelProbe:
    """The real kernel, through netlink and a DNS query from inside the namespace."""

    def host_mac(self, ifname: str) -> str | None:
        """The MAC of a link of the plugin's namespace (the daemon's), None if not there."""
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=ifname)
            if not found:
                return None
            return ipr.get_links(found[0])[0].get("address")

    def check(self, netns: str, ifname: str, address: str, name: str) -> None:
        addresses = run_in(netns, lambda: _addresses_of(ifname))
        if addresses is None:
            raise AttachmentProblem(f"interface {ifname} is missing in {netns}")
        if address not in addresses:
            raise AttachmentProblem(
                f"interface {ifname} in {netns} has {', '.join(addresses) or 'no address'}, "
                f"not {address}"
            )
        answers = _ask_embedded_dns(netns, name)
        if address not in answers:
            raise AttachmentProblem(
                f"the DNS listener at {EMBEDDED_DNS} in {netns} answers {name} with "
                f"{', '.join(answers) or 'nothing'}, not {address}"
            )


def _addresses_of(ifname: str) -> list[str] | None:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return None
        return [a.get("IFA_ADDRESS") for a in ipr.get_addr(index=found[0], family=socket.AF_INET)]


def _ask_embedded_dns(netns: str, name: str) -> list[str]:
    query = DNSRecord.question(name, "A")
    query.header.id = secrets.randbelow(65536)
    sock = open_socket(netns, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.settimeout(DNS_PROBE_TIMEOUT_S)
        sock.sendto(query.pack(), (EMBEDDED_DNS, 53))
        try:
            while True:
                data, _ = sock.recvfrom(4096)
                reply = DNSRecord.parse(data)
                if reply.header.id == query.header.id:
                    break
        except OSError as exc:
            raise AttachmentProblem(
                f"no DNS listener answers at {EMBEDDED_DNS} in {netns}: {exc}"
            ) from None
    finally:
        sock.close()
    return [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]
