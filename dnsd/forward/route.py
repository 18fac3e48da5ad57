"""Where a sandbox's forwarded query goes and which namespace it leaves from.

The glue between the listeners and the `Forwarder`: the sandbox's own upstreams (else the
host's), sockets from the sandbox's namespace (else from the daemon's, for the host's loopback
resolvers), SERVFAIL for a sandbox whose listener is gone, and the forward cache in front
(shared by every sandbox with the same upstream set; a network with `dnsd.dns_cache=false`
takes its sandboxes out of it).

Identical misses in flight at once (the same cache key, transport and UDP size) are merged:
one upstream query, and every asker gets the answer with its own id and question case
(`cache.for_asker`). Sandboxes start the same way, so they tend to ask the same names at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Protocol

from netcore.model import Sandbox, Snapshot
from netcore.requests import dns_cache_enabled

from ..core.answer import Forward
from ..core.wire import PLAIN_UDP_LIMIT, Query, empty_reply
from ..core.wire import SERVFAIL as RCODE_SERVFAIL
from ..metrics.answered import answered_by
from ..sandbox_files.resolvconf import Upstream, sandbox_upstreams
from ..serve.listeners import SandboxListener
from .cache import ForwardCache, Key, cache_key, for_asker
from .forwarder import Forwarder
from .hits import HitTable

# (upstreams, cache scope or None when the sandbox does not use the cache)
Plan = tuple[tuple[Upstream, ...], Hashable | None]
FlightKey = tuple[Key, bool, int | None]  # (cache key, tcp, the asker's EDNS UDP size)
ReplyTo = Callable[[bytes], None]
MAX_JOINED = 1024  # askers waiting on one upstream query; past it they ask on their own


class Listeners(Protocol):
    def get(self, sandbox_id: str) -> SandboxListener | None: ...


class ForwardRoute:
    """Forwards for every sandbox; `update` it with each registry snapshot and host reload."""

    def __init__(
        self,
        forwarder: Forwarder,
        listeners: Listeners,
        host_upstreams: tuple[Upstream, ...] = (),
        cache: ForwardCache | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.forwarder = forwarder
        self.listeners = listeners
        self.cache = cache if cache is not None else ForwardCache(0)
        self.clock = clock
        self._sandboxes: Mapping[str, Sandbox] = {}
        self._host_upstreams = host_upstreams
        self._uncached: frozenset[str] = frozenset()
        self._plans: dict[str, Plan] = {}
        # Each upstream set's number, the scope of its cache keys: a key of plain numbers and
        # bytes hashes in C (a tuple of `Upstream` dataclasses hashed in Python, several times
        # per query) and is nothing the garbage collector tracks.
        self._scope_ids: dict[Hashable, int] = {}
        self._next_scope_id = 0
        self._flights: dict[FlightKey, list[tuple[Query, ReplyTo]]] = {}
        self._tables: dict[str, HitTable] = {}
        self._generation = 0  # bumped by `update`: the hit tables start again

    def update(
        self,
        sandboxes: Mapping[str, Sandbox],
        host_upstreams: tuple[Upstream, ...],
        uncached: frozenset[str] = frozenset(),
    ) -> None:
        """A new registry snapshot or host resolv.conf; `uncached`: the sandboxes that opted
        out of the cache (`cache_opt_outs`). Entries of upstream sets that no sandbox uses
        any more are flushed."""
        old = self._plans
        self._sandboxes = sandboxes
        self._host_upstreams = host_upstreams
        self._uncached = uncached
        self._plans = {}
        self._generation += 1
        self._tables = {sid: t for sid, t in self._tables.items() if sid in sandboxes}
        if self.cache.enabled and (len(self.cache) or len(self._scope_ids) > len(sandboxes)):
            scopes = {scope for _, scope in map(self._plan, sandboxes) if scope is not None}
            if len(self.cache) and scopes != {s for _, s in old.values() if s is not None}:
                self.cache.retain(scopes)
            self._scope_ids = {s: n for s, n in self._scope_ids.items() if n in scopes}

    def cached(self, decision: Forward, sandbox_id: str, packet: bytes = b"") -> bytes | None:
        """The cached answer for a UDP query, or None (then `forward` it). No await: the
        listener answers hits from its receive loop, like local names. Given the `packet`,
        a hit is remembered in the sandbox's `hit_table`."""
        scope = self._plans.get(sandbox_id) or self._plan(sandbox_id)
        if scope[1] is None:
            return None
        query = decision.query
        key = cache_key(scope[1], query)
        reply = self.cache.lookup(key, query, self.clock())
        if reply is None:
            return None
        size = query.edns_size or 0
        if len(reply) > max(size, PLAIN_UDP_LIMIT):
            return None
        table = self._tables.get(sandbox_id) if packet else None
        if table is not None:
            entry = self.cache.entry(key)
            if entry is not None:  # a stale one is put too, and never answered from the table
                table.put(bytes(packet[2:]), entry, query.question)
        return reply

    def hit_table(self, sandbox_id: str, view: object) -> HitTable | None:
        """The sandbox's table of cache hits by query bytes, valid for `view` (see
        `forward.hits`); None when its queries do not use the cache."""
        if not self.cache.enabled:
            return None
        table = self._tables.get(sandbox_id)
        if table is None:
            table = self._tables[sandbox_id] = HitTable(self.cache, self.clock)
        return table.valid_for(view, self._generation)

    async def forward(
        self, packet: bytes, decision: Forward, sandbox_id: str, *, tcp: bool
    ) -> bytes:
        """The reply to a forwarded query. Over UDP the listener asked `cached` already; over
        TCP the cache is looked up here (any size fits)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[bytes, str | None]] = loop.create_future()

        def reply_to(reply: bytes) -> None:
            if not future.done():  # the asker may have been cancelled meanwhile
                future.set_result((reply, answered_by.get()))

        self.forward_soon(packet, decision, sandbox_id, tcp=tcp, reply_to=reply_to)
        reply, upstream = await future
        answered_by.set(upstream)  # the server that answered, for the listener's query log
        return reply

    def forward_soon(
        self, packet: bytes, decision: Forward, sandbox_id: str, *, tcp: bool, reply_to: ReplyTo
    ) -> None:
        """Like `forward`, but `reply_to(reply)` is called with the reply (maybe at once).
        On the event loop's thread."""
        query = decision.query
        listener = self.listeners.get(sandbox_id)
        if listener is None:  # removed meanwhile: never forward from the daemon's namespace
            reply_to(empty_reply(query, RCODE_SERVFAIL))
            return
        upstreams, scope = self._plans.get(sandbox_id) or self._plan(sandbox_id)
        key = None if scope is None else cache_key(scope, query)
        flight: FlightKey | None = None
        if key is not None:
            if tcp:
                hit = self.cache.lookup(key, query, self.clock())
                if hit is not None:
                    reply_to(hit)
                    return
            flight = (key, tcp, query.edns_size)
            waiting = self._flights.get(flight)
            if waiting is not None and len(waiting) < MAX_JOINED:
                waiting.append((query, reply_to))  # the same question is on its way already
                return
            if waiting is None:
                self._flights[flight] = [(query, reply_to)]
            else:
                flight = None  # too many joined: this one goes on its own
        self.forwarder.start(
            packet,
            query,
            upstreams,
            tcp=tcp,
            sandbox_key=sandbox_id,
            sock_factory_for=listener.pool.for_upstream,
            done=lambda reply: self._landed(reply, query, key, flight, reply_to, bool(upstreams)),
        )

    def _landed(
        self,
        reply: bytes,
        query: Query,
        key: Key | None,
        flight: FlightKey | None,
        reply_to: ReplyTo,
        asked: bool,
    ) -> None:
        if key is not None and asked:
            reply = self.cache.store(key, query, reply, self.clock())
        if flight is None:
            reply_to(reply)
            return
        for asker, answer_to in self._flights.pop(flight, ()):
            answer_to(reply if asker is query else for_asker(reply, asker))

    def _plan(self, sandbox_id: str) -> Plan:
        sandbox = self._sandboxes.get(sandbox_id)
        own = sandbox.dns if sandbox is not None else ()
        upstreams = sandbox_upstreams(own, self._host_upstreams)  # the host's, unless it has own
        scope: Hashable | None = None
        if self.cache.enabled and upstreams and sandbox_id not in self._uncached:
            # A loopback server of the sandbox's own is a different server in every sandbox.
            private = any(_loopback(u.address) and not u.host_loopback for u in upstreams)
            servers = (upstreams, sandbox_id) if private else upstreams
            scope = self._scope_ids.get(servers)
            if scope is None:
                scope = self._scope_ids[servers] = self._next_scope_id
                self._next_scope_id += 1
        plan = self._plans[sandbox_id] = (upstreams, scope)
        return plan


def cache_opt_outs(snapshot: Snapshot) -> frozenset[str]:
    """The sandboxes attached to a network with `dnsd.dns_cache=false`."""
    off = {n.id for n in snapshot.networks if not dns_cache_enabled(n.options)}
    if not off:
        return frozenset()
    return frozenset(e.sandbox_id for e in snapshot.endpoints if e.network_id in off)


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False
