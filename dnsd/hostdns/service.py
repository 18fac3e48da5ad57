"""Names from the host: the `--host-dns` listeners, resolved registration and the hosts file,
following the registry.

`HostDns` is the `QueryHandler` of the host listeners: its view is the host's one-zone view
(swapped atomically on every registry change, like the sandboxes' view), and what that view
does not answer is refused, never forwarded.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass

from netcore.errors import InvalidArgument
from netcore.model import Snapshot
from netcore.names import validate_dns_name

from ..config import DaemonConfig
from ..core.answer import Forward
from ..core.view import ZoneView
from .admission import SandboxSources
from .gateways import parse_gateways, wanted_addresses
from .hostsfile import HostHostsFile
from .incremental import HostViewBuilder
from .listener import FLAG, HostAddress, parse_host_dns
from .pool import HostListeners, local_links
from .registrar import ResolvedRegistrar
from .resolved import wanted_links
from .zone import HostView, refusal, wire_labels

log = logging.getLogger(__name__)

MAX_LOGGED_NAMES = 1024  # ambiguous names logged once each; forgotten past this many


@dataclass(frozen=True, slots=True)
class HostDnsConfig:
    addresses: tuple[HostAddress, ...] = ()  # static: bound at start, for the daemon's life
    domain: str | None = None
    hosts_file: str | None = None
    gateway_port: int | None = None  # `gateways[:PORT]`: every local network's gateway

    @classmethod
    def from_daemon(cls, config: DaemonConfig) -> HostDnsConfig:
        """Checked flags (InvalidArgument naming the flag: the daemon exits 1)."""
        addresses: list[HostAddress] = []
        gateway_port = None
        for value in config.host_dns:
            port = parse_gateways(value)
            if port is None:
                addresses.append(parse_host_dns(value))
            elif gateway_port not in (None, port):
                raise InvalidArgument(
                    f"{value!r}: gateways given twice with ports {gateway_port} and {port}; "
                    "give one",
                    field=FLAG,
                )
            else:
                gateway_port = port
        domain = config.host_dns_domain
        if domain is not None:
            domain = validate_dns_name(domain, "--host-dns-domain").rstrip(".").lower()
        return cls(tuple(dict.fromkeys(addresses)), domain, config.host_hosts_file, gateway_port)

    @property
    def listens(self) -> bool:
        return bool(self.addresses) or self.gateway_port is not None

    @property
    def enabled(self) -> bool:
        return self.listens or bool(self.hosts_file)


class HostDns:
    def __init__(
        self,
        config: HostDnsConfig,
        links: Callable[[], Collection[str]] = local_links,
        resolved: ResolvedRegistrar | None = None,
    ) -> None:
        self.config = config
        self._sources = SandboxSources()  # replaced whole on each snapshot
        self.listeners = HostListeners(self, self.admits)
        self.links = links  # this host's interface names: is a network's bridge here?
        self.hosts_file = (
            HostHostsFile(config.hosts_file, config.domain) if config.hosts_file else None
        )
        self.resolved = (resolved or ResolvedRegistrar()) if config.listens else None
        self._views = HostViewBuilder(config.domain)
        self._host: HostView = self._views.build(Snapshot())
        self._revision = -1
        self._lock = threading.Lock()
        self._logged: set[bytes] = set()

    def admits(self, client: str) -> bool:
        """Whether `client` may ask the host listeners: not a sandbox (the event loop)."""
        return self._sources.admits(client)

    @property
    def addresses(self) -> tuple[HostAddress, ...]:
        """The addresses host listeners are open on now."""
        return self.listeners.addresses

    def bind(self) -> None:
        """Open every static `--host-dns` address (InvalidArgument naming the flag when one
        fails); gateways are opened as their networks appear (`on_snapshot`)."""
        self.listeners.bind_static(self.config.addresses)

    async def start(self) -> None:
        """Serve the bound listeners (on the loop); then look for resolved."""
        await self.listeners.start()
        if self.resolved is not None:
            await asyncio.to_thread(self._start_resolved)

    async def close(self) -> None:
        """Close every listener and revert resolved (off the loop: an engine thread may hold
        the lock, waiting for the loop to open a listener)."""
        await asyncio.to_thread(self._close)

    def _start_resolved(self) -> None:
        assert self.resolved is not None
        with self._lock:
            self.resolved.start()

    def _close(self) -> None:
        with self._lock:
            self.listeners.close()
            if self.resolved is not None:
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
            config = self.config
            if config.listens:
                # The view first: a gateway opened below answers its network's names at once.
                self._host = self._views.build(snapshot)
                self._sources = SandboxSources.of(snapshot)
                links = self.links() if config.gateway_port is not None else ()
                self.listeners.reconcile(
                    wanted_addresses(snapshot, config.addresses, config.gateway_port, links)
                )
            if self.hosts_file is not None:
                self.hosts_file.update(snapshot)
            if self.resolved is not None:
                self.resolved.apply(wanted_links(snapshot, self.addresses, config.domain))


def _text(qname: bytes) -> str:
    return ".".join(label.decode("ascii", "replace") for label in wire_labels(qname))
