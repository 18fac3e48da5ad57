"""Names from the host: the `--host-dns` listeners, resolved registration and the hosts file,
following the registry.

`HostDns` is the `QueryHandler` of the host listeners: its view is the host's one-zone view
(swapped atomically on every registry change, like the sandboxes' view), and what that view
does not answer is refused, never forwarded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from netcore.model import Snapshot
from netcore.names import validate_dns_name

from ..config import DaemonConfig
from ..core.answer import Forward
from ..core.view import ZoneView
from .hostsfile import HostHostsFile
from .incremental import HostViewBuilder
from .listener import HostAddress, HostListener, bind_host_sockets, parse_host_dns
from .registrar import ResolvedRegistrar
from .resolved import wanted_links
from .zone import HostView, refusal, wire_labels

log = logging.getLogger(__name__)

MAX_LOGGED_NAMES = 1024  # ambiguous names logged once each; forgotten past this many


@dataclass(frozen=True, slots=True)
class HostDnsConfig:
    addresses: tuple[HostAddress, ...] = ()
    domain: str | None = None
    hosts_file: str | None = None

    @classmethod
    def from_daemon(cls, config: DaemonConfig) -> HostDnsConfig:
        """Checked flags (InvalidArgument naming the flag: the daemon exits 1)."""
        addresses = tuple(dict.fromkeys(parse_host_dns(value) for value in config.host_dns))
        domain = config.host_dns_domain
        if domain is not None:
            domain = validate_dns_name(domain, "--host-dns-domain").rstrip(".").lower()
        return cls(addresses, domain, config.host_hosts_file)

    @property
    def enabled(self) -> bool:
        return bool(self.addresses or self.hosts_file)


class HostDns:
    def __init__(self, config: HostDnsConfig) -> None:
        self.config = config
        self.listeners: list[HostListener] = []
        self.hosts_file = (
            HostHostsFile(config.hosts_file, config.domain) if config.hosts_file else None
        )
        self.resolved = ResolvedRegistrar() if config.addresses else None
        self._views = HostViewBuilder(config.domain)
        self._host: HostView = self._views.build(Snapshot())
        self._revision = -1
        self._lock = threading.Lock()
        self._logged: set[bytes] = set()

    def bind(self) -> None:
        """Open every `--host-dns` address (InvalidArgument naming the flag when one fails)."""
        opened = []
        try:
            for address in self.config.addresses:
                opened.append((address, bind_host_sockets(address)))
        except BaseException:
            for _, (udp, tcp) in opened:
                udp.close()
                tcp.close()
            raise
        self.listeners = [HostListener(address, socks, self) for address, socks in opened]

    async def start(self) -> None:
        """Serve the bound listeners (on the loop); then look for resolved."""
        for listener in self.listeners:
            await listener.serve()
            log.info("host dns listening on %s (udp, tcp)", listener.address)
        if self.resolved is not None:
            self.resolved.start()

    async def close(self) -> None:
        for listener in self.listeners:
            listener.close()
        self.listeners = []
        if self.resolved is not None:
            with self._lock:
                self.resolved.close()

    # --- QueryHandler ---

    @property
    def view(self) -> ZoneView:
        return self._host.view

    def cached(self, decision: Forward, sandbox_id: str, packet: bytes = b"") -> bytes | None:
        """Nothing is cached for the host: it never forwards."""
        return None

    def hit_table(self, sandbox_id: str, view: ZoneView) -> None:
        return None

    async def forward(
        self, packet: bytes, decision: Forward, sandbox_id: str, *, tcp: bool
    ) -> bytes:
        return self.refuse(decision)

    def forward_soon(
        self,
        packet: bytes,
        decision: Forward,
        sandbox_id: str,
        *,
        tcp: bool,
        reply_to: Callable[[bytes], None],
    ) -> None:
        reply_to(self.refuse(decision))

    def refuse(self, decision: Forward) -> bytes:
        """Not in the host's zone: NXDOMAIN under a known network, else REFUSED."""
        reply, ambiguous = refusal(decision.query, self._host)
        name = decision.query.qname_lower
        if ambiguous and name not in self._logged:
            if len(self._logged) >= MAX_LOGGED_NAMES:
                self._logged.clear()
            self._logged.add(name)
            log.info(
                "host dns: %s is a name on several networks: NXDOMAIN; ask for <name>.<network>",
                _text(name),
            )
        return reply

    # --- following the registry (engine threads) ---

    def on_snapshot(self, snapshot: Snapshot) -> None:
        with self._lock:
            if snapshot.revision < self._revision:
                return  # overtaken by a newer one
            self._revision = snapshot.revision
            if self.listeners:
                self._host = self._views.build(snapshot)
            if self.hosts_file is not None:
                self.hosts_file.update(snapshot)
            if self.resolved is not None:
                self.resolved.apply(
                    wanted_links(snapshot, self.config.addresses, self.config.domain)
                )


def _text(qname: bytes) -> str:
    return ".".join(label.decode("ascii", "replace") for label in wire_labels(qname))
