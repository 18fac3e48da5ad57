"""The host-facing listeners: `--host-dns ADDR[:PORT]`, UDP and TCP in the daemon's namespace.

They are the sandbox listeners' servers (`dnsd.serve`), bound to a host address and asking the
answer core as the host (`zone.HOST_ASKER`). A bad address is refused before anything serves:
exit status 1 with a message naming the flag.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

from netcore.errors import InvalidArgument

from ..serve.handler import QueryHandler
from ..serve.listeners import RESOLVER_ADDRESS, UDP_RCVBUF
from ..serve.pair import ServerPair
from .zone import HOST_ASKER

FLAG = "--host-dns"
DNS_PORT = 53

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class HostAddress:
    ip: IPAddress
    port: int = DNS_PORT

    def __str__(self) -> str:
        host = f"[{self.ip}]" if self.ip.version == 6 else str(self.ip)
        return f"{host}:{self.port}"


def parse_host_dns(value: str) -> HostAddress:
    """`ADDR`, `ADDR:PORT`, `[V6]` or `[V6]:PORT`; never 127.0.0.11 (the sandboxes' own)."""
    host, port_s = value, ""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise InvalidArgument(f"{value!r}: use ADDR[:PORT] or [IPV6][:PORT]", field=FLAG)
        port_s = rest[1:]
    elif value.count(":") == 1:
        host, _, port_s = value.partition(":")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise InvalidArgument(f"{value!r}: {host!r} is not an IP address", field=FLAG) from None
    port = DNS_PORT
    if port_s:
        if not port_s.isdigit() or not 0 < int(port_s) < 65536:
            raise InvalidArgument(f"{value!r}: port must be 1-65535", field=FLAG)
        port = int(port_s)
    if str(ip) == RESOLVER_ADDRESS:
        raise InvalidArgument(
            f"{value!r}: {RESOLVER_ADDRESS} is reserved for the sandboxes' resolver; "
            "use another loopback address such as 127.0.0.153",
            field=FLAG,
        )
    if ip.is_unspecified:
        raise InvalidArgument(
            f"{value!r}: give one address (the host listener must not listen everywhere)",
            field=FLAG,
        )
    return HostAddress(ip, port)


def bind_host_sockets(address: HostAddress) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets bound to `address` in this namespace; InvalidArgument naming the
    flag when the address is not local or the port is taken."""
    family = socket.AF_INET6 if address.ip.version == 6 else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    tcp = socket.socket(family, socket.SOCK_STREAM)
    try:
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT after a restart
        for sock, proto in ((udp, "UDP"), (tcp, "TCP")):
            try:
                sock.bind((str(address.ip), address.port))
            except OSError as exc:
                raise _bind_error(address, proto, exc) from None
        tcp.listen(128)
    except BaseException:
        udp.close()
        tcp.close()
        raise
    return udp, tcp


def _bind_error(address: HostAddress, proto: str, exc: OSError) -> InvalidArgument:
    if exc.errno == errno.EADDRNOTAVAIL:
        why = (
            f"{address.ip} is not an address of this host: give one of its addresses "
            "(a loopback address such as 127.0.0.153, or a network's gateway)"
        )
    elif exc.errno == errno.EADDRINUSE:
        why = (
            f"{proto} port {address.port} is in use on {address.ip}: stop that server or "
            "pick another port"
        )
    elif exc.errno == errno.EACCES:
        why = f"binding {proto} port {address.port} needs root (or CAP_NET_BIND_SERVICE)"
    else:
        why = f"cannot bind {proto}: {exc.strerror or exc}"
    return InvalidArgument(f"{address}: {why}", field=FLAG)


class HostListener(ServerPair):
    """One `--host-dns` address, served by the sandbox listeners' UDP and TCP servers; a
    client that `admit` refuses (a sandbox: `admission.SandboxSources`) is not answered."""

    def __init__(
        self,
        address: HostAddress,
        sockets: tuple[socket.socket, socket.socket],
        handler: QueryHandler,
        admit: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__(*sockets, HOST_ASKER, handler)
        self.address = address
        self.udp.admit = self.tcp.admit = admit
