"""The registry follower: swaps the zone view in, then drives the listeners and sandbox files.

`on_snapshot` runs on the thread that committed the change (the engine's worker), before the
engine call returns: the new view is swapped in and the listener is serving before a connect
is reported done, so a name is answerable as soon as the caller hears of it.

The follower is also the `QueryHandler` the listeners serve: the current view, and forwarding
through `forward.route`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping

from netcore.kernel.base import Kernel
from netcore.model import Sandbox, Snapshot

from .config import DaemonConfig
from .core.answer import Forward
from .core.delta import snapshot_delta
from .core.incremental import ViewBuilder
from .core.live_index import LiveIndex
from .core.view import ZoneView
from .forward.cache import ForwardCache
from .forward.forwarder import Forwarder
from .forward.hits import HitTable
from .forward.route import ForwardRoute, cache_opt_outs
from .metrics.counters import StatsBook, primary_network, primary_networks
from .sandbox_files.writer import SandboxFilesWriter
from .serve.listener_set import ListenerSet, wanted_listeners


class Follower:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        config: DaemonConfig,
        forwarder: Forwarder,
        kernel: Kernel,
        stats_book: StatsBook | None = None,
    ) -> None:
        self.files = SandboxFilesWriter(config)
        self.stats_book = stats_book
        self.listeners = ListenerSet(
            loop, kernel, self, on_stopped=forwarder.forget, stats_book=stats_book
        )
        cache = ForwardCache(
            config.cache_size,
            max_ttl=config.cache_max_ttl,
            max_negative_ttl=config.cache_max_negative_ttl,
            stale_s=config.cache_stale_s,
        )
        self.route = ForwardRoute(forwarder, self.listeners, self.files.host.upstreams, cache)
        self._views = ViewBuilder()  # re-packs only what each change touched
        self._view = self._views.build(Snapshot())
        self._snapshot = Snapshot()
        self._live = LiveIndex(self._snapshot)  # the snapshot's sandboxes and endpoints
        self._sandboxes: dict[str, Sandbox] = {}
        self._health: Mapping[str, str] = {}  # sandbox id -> status (dnsd.health)
        self._lock = threading.Lock()

    # --- QueryHandler ---

    @property
    def view(self) -> ZoneView:
        return self._view

    async def forward(
        self, packet: bytes, decision: Forward, sandbox_id: str, *, tcp: bool
    ) -> bytes:
        return await self.route.forward(packet, decision, sandbox_id, tcp=tcp)

    def sandbox_name(self, sandbox_id: str) -> str:
        """The name of a sandbox (its short id once it is gone); thread: any."""
        sandbox = self._sandboxes.get(sandbox_id)
        return sandbox.name if sandbox is not None else sandbox_id[:12]

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def cached(self, decision: Forward, sandbox_id: str, packet: bytes = b"") -> bytes | None:
        return self.route.cached(decision, sandbox_id, packet)

    def hit_table(self, sandbox_id: str, view: ZoneView) -> HitTable | None:
        return self.route.hit_table(sandbox_id, view)

    def forward_soon(
        self,
        packet: bytes,
        decision: Forward,
        sandbox_id: str,
        *,
        tcp: bool,
        reply_to: Callable[[bytes], None],
    ) -> None:
        self.route.forward_soon(packet, decision, sandbox_id, tcp=tcp, reply_to=reply_to)

    # --- following the registry (called on engine threads, never on the loop) ---

    def on_snapshot(self, snapshot: Snapshot, *, force: bool = False) -> None:
        with self._lock:
            if snapshot.revision < self._snapshot.revision and not force:
                return  # an older snapshot overtaken by a newer one
            touched = self._follow(snapshot)
            self._snapshot = snapshot
            sandboxes = dict(self._live.sandboxes)  # a copy: read on other threads
            self._sandboxes = sandboxes
            host = self.files.host
            self.route.update(sandboxes, host.upstreams, cache_opt_outs(snapshot))
            self._view = self._views.build(
                snapshot, host_explicit_ndots=host.explicit_ndots, health=self._health
            )
            if touched is None:
                if self.stats_book is not None:
                    self.stats_book.follow(primary_networks(snapshot))
                self.listeners.reconcile(wanted_listeners(snapshot, sandboxes))
            else:
                self._follow_touched(touched, sandboxes)
            self.files.write(snapshot, sandboxes)

    def _follow(self, snapshot: Snapshot) -> set[str] | None:
        """Bring the index up to `snapshot`: the sandboxes the change touched, or None when
        it was more than sandboxes and endpoints (then everything is looked at)."""
        delta = snapshot_delta(self._snapshot, snapshot)
        if delta.same_networks and delta.same_records:
            return self._live.apply(delta)[1]
        self._live = LiveIndex(snapshot)
        return None

    def _follow_touched(self, touched: set[str], sandboxes: Mapping[str, Sandbox]) -> None:
        """Listeners and query-stats labels of the sandboxes a change touched only."""
        live = self._live
        endpoints = {sid: live.endpoints_of(sid) for sid in touched}
        if self.stats_book is not None:
            names = {n.id: n.name for n in live.networks.values()}
            self.stats_book.update(
                {
                    sid: primary_network(eps, names) if eps else None
                    for sid, eps in endpoints.items()
                }
            )
        desired = {
            sid: sb
            for sid in touched
            if (sb := sandboxes.get(sid)) is not None and sb.mode == "bridge" and endpoints[sid]
        }
        self.listeners.reconcile(desired, only=touched)

    def update_health(self, statuses: Mapping[str, str]) -> None:
        """New health statuses: the names of the sandboxes whose status changed are re-packed
        and the view swapped (a new view object, so every listener's reply cache starts
        over). Thread: any but the loop's."""
        with self._lock:
            self._health = dict(statuses)
            self._view = self._views.build(
                self._snapshot,
                host_explicit_ndots=self.files.host.explicit_ndots,
                health=self._health,
            )

    def reload_host(self) -> bool:
        """Re-read the host's resolv.conf; on a change, update every sandbox. Thread: any but
        the loop's."""
        if not self.files.reload_host():
            return False
        self.on_snapshot(self._snapshot, force=True)
        return True

    def prepare_listener(self, sandbox: Sandbox) -> None:
        """An engine hook: open a sandbox's listener while its first connect is under way."""
        self.listeners.prepare(sandbox)

    def abandon_listener(self, sandbox: Sandbox) -> None:
        """An engine hook: that first connect failed, the prepared listener is not wanted."""
        self.listeners.abandon(sandbox.id)

    def clear_stale_redirects(self) -> None:
        """At start-up, once the listeners run: drop redirects left without a listener."""
        self.listeners.clear_stale_redirects(self._sandboxes.values())

    async def close(self) -> None:
        """Stop every listener (the sandboxes keep their network and redirect rules)."""
        await self.listeners.close()
