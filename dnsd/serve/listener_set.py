"""The running DNS listeners, reconciled against the set the registry wants (sandbox id -> one).

Opening a listener is blocking kernel work (a thread entering the namespace, nft there), done
through the `Kernel` role on the caller's thread; serving it is started on the event loop and
waited for, so a listener is serving when `reconcile` returns. Stopping is not waited for.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor

from netcore.kernel.base import Kernel
from netcore.model import Sandbox, Snapshot

from ..metrics.counters import StatsBook
from .handler import QueryHandler
from .listeners import (
    SandboxListener,
    SandboxSockets,
    open_many,
    open_sockets,
    preferred_port,
)

log = logging.getLogger(__name__)

LISTENER_START_TIMEOUT_S = 10.0
PARALLEL_STARTS = 8  # nft is mostly process start-up: a few at once keep both cores busy


def wanted_listeners(snapshot: Snapshot, sandboxes: Mapping[str, Sandbox]) -> dict[str, Sandbox]:
    """The sandboxes that get a listener: bridge mode, attached to at least one network."""
    with_endpoints = {e.sandbox_id for e in snapshot.endpoints}
    return {
        sid: sb for sid, sb in sandboxes.items() if sb.mode == "bridge" and sid in with_endpoints
    }


class ListenerSet:
    """One `SandboxListener` per wanted sandbox. Thread: any but the loop's (except `close`)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        kernel: Kernel,
        handler: QueryHandler,
        on_stopped: Callable[[str], None] = lambda sandbox_id: None,
        stats_book: StatsBook | None = None,
    ) -> None:
        self.stats_book = stats_book  # each listener counts into stats of its own from here
        self.loop = loop
        self.kernel = kernel
        self.handler = handler
        self.on_stopped = on_stopped  # a stopped sandbox's id, for state kept per sandbox
        self._running: dict[str, SandboxListener] = {}
        self._lock = threading.Lock()
        # Listeners being opened while the engine attaches a sandbox's first network.
        self._prepared: dict[str, Future[SandboxSockets | None]] = {}
        self._preparer = ThreadPoolExecutor(2, thread_name_prefix="listener")

    def get(self, sandbox_id: str) -> SandboxListener | None:
        return self._running.get(sandbox_id)

    def __contains__(self, sandbox_id: object) -> bool:
        return sandbox_id in self._running

    def __len__(self) -> int:
        return len(self._running)

    def cached_replies(self) -> int:
        """Replies remembered by every listener's reply cache (thread: the loop's)."""
        return sum(listener.udp.cached_replies for listener in list(self._running.values()))

    def reconcile(self, desired: Mapping[str, Sandbox], only: Iterable[str] | None = None) -> None:
        """Stop the listeners not in `desired`, start (or adopt prepared) the missing ones.
        With `only`, `desired` speaks for those sandboxes alone (a change that touched
        them): the others' listeners are left as they are.

        A listener that cannot be opened (its namespace vanished) is logged and left out;
        the others still start."""
        with self._lock:
            candidates = self._running if only is None else [s for s in only if s in self._running]
            for sid in [s for s in candidates if s not in desired]:
                listener = self._running.pop(sid)
                # Not waited for: the disconnect is done once the registry says so; the
                # redirect table of a namespace without listener only points at a closed port.
                asyncio.run_coroutine_threadsafe(self._stop(listener), self.loop)
            to_start = [(sid, sb) for sid, sb in desired.items() if sid not in self._running]
            prepared = {
                sid: self._prepared.pop(sid) for sid, _ in to_start if sid in self._prepared
            }
            fresh = [item for item in to_start if item[0] not in prepared]
            if len(fresh) > 1:  # a restart: every redirect in one batch
                opened_fresh = self._open_many(fresh)
            else:
                opened_fresh = {item[0]: self._open_or_log(item) for item in fresh}
            opened = [
                prepared[sid].result() if sid in prepared else opened_fresh[sid]
                for sid, _ in to_start
            ]
            started: list[SandboxListener] = []
            for (sid, sandbox), sockets in zip(to_start, opened, strict=True):
                if sockets is None:
                    continue
                stats = self.stats_book.open(sid) if self.stats_book is not None else None
                started.append(SandboxListener(sid, sockets, self.handler, stats))
                log.debug("dns listener for %s on ports %s", sandbox.name, sockets.ports)
            if started:  # one trip to the loop for all of them
                serving = asyncio.run_coroutine_threadsafe(_serve_all(started), self.loop)
                for listener in serving.result(LISTENER_START_TIMEOUT_S + 0.01 * len(started)):
                    self._running[listener.sandbox_id] = listener

    def prepare(self, sandbox: Sandbox) -> None:
        """The engine starts a sandbox's first connect: open its listener in parallel with the
        kernel work, so the name answers as soon as the connect is committed. Its namespace
        holds no redirect table of an older daemon (`clear_stale_redirects` removed those at
        start-up), so the redirect is only added (`fresh`), with no deletion to wait for."""
        if sandbox.mode != "bridge":
            return
        with self._lock:
            if sandbox.id not in self._running and sandbox.id not in self._prepared:
                self._prepared[sandbox.id] = self._preparer.submit(
                    self._open_or_log, (sandbox.id, sandbox), fresh=True
                )

    def abandon(self, sandbox_id: str) -> None:
        """The engine gave up the first connect `prepare` was told of: close that listener.

        Only the engine knows: a snapshot without the sandbox may just be another host's change
        arriving while the connect is still under way (it must not cost the listener)."""
        with self._lock:
            future = self._prepared.pop(sandbox_id, None)
        if future is not None:  # waited for: a retried connect must not race its redirect
            self._discard_prepared(sandbox_id, future.result())

    def clear_stale_redirects(self, sandboxes: Iterable[Sandbox]) -> None:
        """At start-up: a daemon killed right after a disconnect left the DNS redirect of a
        sandbox that has no listener now; it points at a dead port and hides the sandbox's own
        127.0.0.11:53. Remove it wherever no listener is (idempotent)."""
        with self._lock:
            stale = [
                sb.netns_path
                for sb in sandboxes
                if sb.mode == "bridge"
                and sb.id not in self._running
                and self.kernel.netns_exists(sb.netns_path)
            ]
        if not stale:
            return
        with ThreadPoolExecutor(PARALLEL_STARTS) as pool:
            for path, error in zip(stale, pool.map(self._remove_redirect, stale), strict=True):
                if error:
                    log.warning("remove stale dns redirect in %s: %s", path, error)

    async def close(self) -> None:
        """Stop every listener (the sandboxes keep their network and redirect rules)."""
        for listener in self._running.values():
            listener.close()
            listener.teardown(self.kernel, remove_redirect=False)
        self._running.clear()

    async def _stop(self, listener: SandboxListener) -> None:
        listener.close()
        self.on_stopped(listener.sandbox_id)
        if self.stats_book is not None and listener.stats is not None:
            self.stats_book.retire(listener.stats)
        await asyncio.to_thread(self._teardown, listener)

    def _teardown(self, listener: SandboxListener) -> None:
        # Under the lock that starting a listener holds: a sandbox reconnected meanwhile has a
        # new listener whose redirect (the same nft table) must stay.
        with self._lock:
            remove = listener.sandbox_id not in self._running
            listener.teardown(self.kernel, remove_redirect=remove)

    def _open_or_log(
        self, item: tuple[str, Sandbox], *, fresh: bool = False
    ) -> SandboxSockets | None:
        sid, sandbox = item
        try:
            return open_sockets(self.kernel, sandbox.netns_path, preferred_port(sid), fresh=fresh)
        except Exception as exc:  # vanished namespace: reconcile will clean it up
            log.warning("dns listener for %s not started: %s", sandbox.name, exc)
            return None

    def _open_many(self, items: list[tuple[str, Sandbox]]) -> dict[str, SandboxSockets | None]:
        wanted = [(sandbox.netns_path, preferred_port(sid)) for sid, sandbox in items]
        opened: dict[str, SandboxSockets | None] = {}
        for (sid, sandbox), sockets in zip(items, open_many(self.kernel, wanted), strict=True):
            if isinstance(sockets, Exception):
                log.warning("dns listener for %s not started: %s", sandbox.name, sockets)
                opened[sid] = None
            else:
                opened[sid] = sockets
        return opened

    def _discard_prepared(self, sandbox_id: str, sockets: SandboxSockets | None) -> None:
        if sockets is None:
            return
        # The redirect table is the namespace's, not this listener's: a listener started or
        # prepared since (a retried connect) has put its own ports there.
        with self._lock:
            in_use = sandbox_id in self._running or sandbox_id in self._prepared
            if not in_use:
                self._remove_redirect(sockets.netns_path)
        sockets.close()

    def _remove_redirect(self, netns_path: str) -> str | None:
        try:
            self.kernel.remove_dns_redirect(netns_path)
        except Exception as exc:
            return str(exc)
        return None


async def _serve_all(listeners: list[SandboxListener]) -> list[SandboxListener]:
    """Start serving each listener; those that could not are closed, logged and left out."""
    serving = []
    for listener in listeners:
        try:
            await listener.serve()
        except Exception as exc:
            log.warning("dns listener for %s not started: %s", listener.sandbox_id[:12], exc)
            listener.close()  # its redirect points at a closed port until it is opened again
            listener.worker.close()
            continue
        serving.append(listener)
    return serving
