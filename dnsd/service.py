"""The DNS service: follows the registry, keeps one listener per sandbox, writes its files.

`on_snapshot` runs on the thread that committed the change (the engine's worker), before the
engine call returns: the new view is swapped in and the listener is serving before a connect
is reported done, so a name is answerable as soon as the caller hears of it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from netcore.kernel import netns
from netcore.model import Sandbox, Snapshot
from netcore.nft.apply import NftCli
from netcore.nft.redirect import render_dns_redirect_teardown

from .config import DaemonConfig
from .core.answer import Forward
from .core.incremental import ViewBuilder
from .core.view import ZoneView, root_sandbox
from .core.wire import SERVFAIL as RCODE_SERVFAIL
from .core.wire import empty_reply
from .files import write_managed
from .forward.forwarder import Forwarder
from .hosts import render_hosts
from .resolvconf import (
    Upstream,
    explicit_ndots,
    load_host_text,
    parse,
    parse_upstream,
    read_host_resolv_conf,
    sandbox_resolv_conf,
    sandbox_upstreams,
)
from .serve.listeners import (
    SandboxListener,
    SandboxSockets,
    SocketPool,
    open_sockets,
    preferred_port,
)

log = logging.getLogger(__name__)

LISTENER_START_TIMEOUT_S = 10.0
PARALLEL_STARTS = 8  # nft is mostly process start-up: a few at once keep both cores busy


@dataclass(frozen=True, slots=True)
class HostResolv:
    """The daemon's view of the host's resolver configuration."""

    source: str
    text: str
    upstreams: tuple[Upstream, ...]
    explicit_ndots: bool

    @classmethod
    def load(cls, config: DaemonConfig) -> HostResolv:
        path = config.host_resolv_conf
        parsed, upstreams = read_host_resolv_conf(path)
        if config.upstreams:  # --upstream overrides the file's servers, not its search/options
            upstreams = tuple(parse_upstream(a) for a in config.upstreams[:3])
        return cls(path, load_host_text(path), upstreams, explicit_ndots(parsed, None))


class DnsService:
    def __init__(
        self, loop: asyncio.AbstractEventLoop, config: DaemonConfig, forwarder: Forwarder
    ) -> None:
        self.loop = loop
        self.config = config
        self.forwarder = forwarder
        self.host = HostResolv.load(config)
        self.listeners: dict[str, SandboxListener] = {}
        self._views = ViewBuilder()  # re-packs only what each change touched
        self._view = self._views.build(Snapshot())
        self._snapshot = Snapshot()
        self._sandboxes: dict[str, Sandbox] = {}
        self._written: dict[str, tuple[object, ...]] = {}
        self._lock = threading.Lock()
        # Listeners being opened while the engine attaches a sandbox's first network.
        self._prepared: dict[str, Future[SandboxSockets | None]] = {}
        self._preparer = ThreadPoolExecutor(2, thread_name_prefix="listener")

    # --- QueryHandler ---

    @property
    def view(self) -> ZoneView:
        return self._view

    async def forward(
        self, packet: bytes, decision: Forward, sandbox_id: str, *, tcp: bool
    ) -> bytes:
        listener = self.listeners.get(sandbox_id)
        if listener is None:  # removed meanwhile: never forward from the daemon's namespace
            return empty_reply(decision.query, RCODE_SERVFAIL)
        sandbox = self._sandboxes.get(sandbox_id)
        own = sandbox.dns if sandbox is not None else ()
        upstreams = sandbox_upstreams(own, self.host.upstreams)  # the host's, unless it has own
        return await self.forwarder.forward(
            packet,
            decision.query,
            upstreams,
            tcp=tcp,
            sandbox_key=sandbox_id,
            sock_factory_for=self._socket_factory(listener.pool),
        )

    @staticmethod
    def _socket_factory(pool: SocketPool) -> Callable[[Upstream], Callable]:
        """Queries leave from the sandbox's namespace (source = its address, like Docker);
        the host's loopback resolvers (127.0.0.53) are dialled from the daemon's own."""

        def for_upstream(upstream: Upstream) -> Callable[[int, int], socket.socket]:
            return socket.socket if upstream.host_loopback else pool.take

        return for_upstream

    # --- following the registry (called on engine threads, never on the loop) ---

    def on_snapshot(self, snapshot: Snapshot, *, force: bool = False) -> None:
        with self._lock:
            if snapshot.revision < self._snapshot.revision and not force:
                return  # an older snapshot overtaken by a newer one
            self._snapshot = snapshot
            sandboxes = {s.id: s for s in snapshot.sandboxes}
            self._sandboxes = sandboxes
            self._view = self._views.build(snapshot, host_explicit_ndots=self.host.explicit_ndots)
            self._reconcile_listeners(snapshot, sandboxes)
            self._write_files(snapshot, sandboxes)

    def reload_host(self) -> bool:
        """Re-read the host's resolv.conf; on a change, update every sandbox. Thread: any but
        the loop's."""
        fresh = HostResolv.load(self.config)
        if fresh == self.host:
            return False
        log.info(
            "host resolv.conf changed: upstreams now %s",
            " ".join(str(u) for u in fresh.upstreams) or "none",
        )
        self.host = fresh
        self.on_snapshot(self._snapshot, force=True)
        return True

    def _reconcile_listeners(self, snapshot: Snapshot, sandboxes: dict[str, Sandbox]) -> None:
        with_endpoints = {e.sandbox_id for e in snapshot.endpoints}
        desired = {
            sid: sb
            for sid, sb in sandboxes.items()
            if sb.mode == "bridge" and sid in with_endpoints
        }
        for sid in [s for s in self.listeners if s not in desired]:
            listener = self.listeners.pop(sid)
            # Not waited for: the disconnect is done once the registry says so; the redirect
            # table of a namespace without listener only points at a closed port.
            asyncio.run_coroutine_threadsafe(self._stop_listener(listener), self.loop)
        to_start = [(sid, sb) for sid, sb in desired.items() if sid not in self.listeners]
        prepared = {sid: self._prepared.pop(sid) for sid, _ in to_start if sid in self._prepared}
        for sid, future in list(self._prepared.items()):  # their connect failed
            del self._prepared[sid]
            future.add_done_callback(_discard_prepared)
        fresh = [item for item in to_start if item[0] not in prepared]
        if len(fresh) > 1:  # a restart: nft runs once per namespace, so in parallel
            with ThreadPoolExecutor(PARALLEL_STARTS) as pool:
                opened_fresh = dict(
                    zip([i[0] for i in fresh], pool.map(_open_or_log, fresh), strict=True)
                )
        else:
            opened_fresh = {item[0]: _open_or_log(item) for item in fresh}
        opened = [
            prepared[sid].result() if sid in prepared else opened_fresh[sid] for sid, _ in to_start
        ]
        for (sid, sandbox), sockets in zip(to_start, opened, strict=True):
            if sockets is None:
                continue
            listener = SandboxListener(sid, sockets, self)
            self._on_loop(listener.serve())
            self.listeners[sid] = listener
            log.debug("dns listener for %s on ports %s", sandbox.name, sockets.ports)

    def prepare_listener(self, sandbox: Sandbox) -> None:
        """The engine starts a sandbox's first connect: open its listener in parallel with the
        kernel work, so the name answers as soon as the connect is committed."""
        if sandbox.mode != "bridge":
            return
        with self._lock:
            if sandbox.id not in self.listeners and sandbox.id not in self._prepared:
                self._prepared[sandbox.id] = self._preparer.submit(
                    _open_or_log, (sandbox.id, sandbox)
                )

    def clear_stale_redirects(self) -> None:
        """At start-up: a daemon killed right after a disconnect left the DNS redirect of a
        sandbox that has no listener now; it points at a dead port and hides the sandbox's own
        127.0.0.11:53. Remove it wherever no listener is (idempotent)."""
        with self._lock:
            stale = [
                sb.netns_path
                for sid, sb in self._sandboxes.items()
                if sb.mode == "bridge" and sid not in self.listeners and netns.exists(sb.netns_path)
            ]
        if not stale:
            return
        with ThreadPoolExecutor(PARALLEL_STARTS) as pool:
            for path, error in zip(stale, pool.map(_remove_redirect, stale), strict=True):
                if error:
                    log.warning("remove stale dns redirect in %s: %s", path, error)

    async def _stop_listener(self, listener: SandboxListener) -> None:
        listener.close()
        self.forwarder.forget(listener.sandbox_id)
        await asyncio.to_thread(self._teardown, listener)

    def _teardown(self, listener: SandboxListener) -> None:
        # Under the lock that starting a listener holds: a sandbox reconnected meanwhile has a
        # new listener whose redirect (the same nft table) must stay.
        with self._lock:
            listener.teardown(remove_redirect=listener.sandbox_id not in self.listeners)

    def _on_loop(self, coro) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(LISTENER_START_TIMEOUT_S)

    def _write_files(self, snapshot: Snapshot, sandboxes: dict[str, Sandbox]) -> None:
        addresses: dict[str, list[str]] = {}
        for ep in snapshot.endpoints:
            own = addresses.setdefault(ep.sandbox_id, [])
            own.append(str(ep.ipv4))
            if ep.ipv6 is not None:
                own.append(str(ep.ipv6))
        for sid, sandbox in sandboxes.items():
            if sandbox.mode == "host" or not sandbox.resolv_conf_path:
                continue
            root = root_sandbox(sandbox, sandboxes)
            own = tuple(addresses.get(root.id if root else sid, ()))
            key = (sandbox, own, self.host)
            if self._written.get(sid) == key:
                continue
            hashes = os.path.join(self.config.state_dir, "sandboxes", sid)
            try:
                write_managed(
                    sandbox.resolv_conf_path,
                    sandbox_resolv_conf(
                        sandbox, self.host.text, self.host.upstreams, self.host.source
                    ),
                    hashes,
                )
                write_managed(sandbox.hosts_path, render_hosts(sandbox, own), hashes)
                self._written[sid] = key
            except Exception as exc:
                log.warning("write resolv.conf/hosts of %s: %s", sandbox.name, exc)
        for sid in [s for s in self._written if s not in sandboxes]:
            del self._written[sid]

    async def close(self) -> None:
        """Stop every listener (the sandboxes keep their network and redirect rules)."""
        for listener in self.listeners.values():
            listener.close()
            listener.teardown(remove_redirect=False)
        self.listeners.clear()


def _discard_prepared(future: Future[SandboxSockets | None]) -> None:
    sockets = future.result()
    if sockets is None:
        return
    sockets.udp.close()
    sockets.tcp.close()
    _remove_redirect(sockets.netns_path)
    sockets.worker.close()


def _remove_redirect(netns_path: str) -> str | None:
    try:
        NftCli().apply(render_dns_redirect_teardown(), netns=netns_path)
    except Exception as exc:
        return str(exc)
    return None


def _open_or_log(item: tuple[str, Sandbox]) -> SandboxSockets | None:
    sid, sandbox = item
    try:
        return open_sockets(sandbox.netns_path, preferred_port(sid))
    except Exception as exc:  # vanished namespace: reconcile will clean it up
        log.warning("dns listener for %s not started: %s", sandbox.name, exc)
        return None


def host_file_stamp(path: str) -> tuple[int, int, int] | None:
    """What changes when the host's resolv.conf is replaced or edited."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


__all__ = ["DnsService", "HostResolv", "host_file_stamp", "parse"]
