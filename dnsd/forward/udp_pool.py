"""Connected UDP sockets to the upstream servers, shared by the queries in flight.

A socket and a task per forwarded query cost ~100 us of CPU (issue 13). Here each namespace
(a sandbox's, or the daemon's for the host's loopback resolvers) keeps up to
`SOCKETS_PER_UPSTREAM` connected sockets to each server, used in turn; the loop reads their
replies with a reader callback. The defences of a socket per query stay:

- a random source port: every socket gets a fresh ephemeral port from the kernel, and is
  retired after `QUERIES_PER_SOCKET` queries or `SOCKET_LIFETIME_S` seconds (a retired socket
  is closed once nothing waits on it), so a port lives briefly and for few queries;
- a random 16-bit id per query (from the OS's random source), unique on its socket; the client's
  id is put back in the reply;
- the question matched (`core.wire.is_answer_to`) and answers only from the server asked (the
  socket is connected: the kernel drops datagrams from any other address or port).

A datagram that matches nothing waiting is ignored (a spoof, or a late answer). An ICMP
unreachable on a socket fails every query waiting on it: they all went to that server.

Queries are not sent one system call each: `send` queues them on their socket, and right
after the loop's current callback (a listener's batch of queries) every socket's queue goes
out with one sendmmsg(2). Besides the system calls this saves wake-ups: the server (and the
host's stack on the way) gets a burst, not a trickle. A socket that cannot send (an old ICMP
error) is replaced once and its queries sent again; then they fail over to the next server.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from netcore.errors import NetcoreError

from ..core.wire import Query
from ..serve.mmsg import Outbox
from .client import SockFactory, UpstreamError, UpstreamUnreachable, describe, family_of
from .health import HealthKey, UpstreamLike, health_key
from .upstream_conn import Pending, RandomIds, UpstreamConn, Waiter, send_all

log = logging.getLogger(__name__)

SOCKETS_PER_UPSTREAM = 4
QUERIES_PER_SOCKET = 100
SOCKET_LIFETIME_S = 10.0
FLUSH_EVERY = 16  # queued queries sent at once at most: a batch's first ones need not wait


class _Flusher:
    """The sockets with queued queries, sent right after the loop's current callback."""

    __slots__ = ("_dirty", "_outbox", "_queued", "_scheduled")

    def __init__(self) -> None:
        self._dirty: list[tuple[UpstreamSockets, UpstreamConn]] = []
        self._outbox: Outbox | None = None
        self._queued = 0
        self._scheduled = False

    def queue(self, owner: UpstreamSockets, conn: UpstreamConn, first: bool) -> None:
        """One more query queued on `conn` (`first`: its queue was empty)."""
        if first:
            if not self._scheduled:
                owner._loop.call_soon(self._flush_soon)
                self._scheduled = True
            self._dirty.append((owner, conn))
        self._queued += 1
        if self._queued >= FLUSH_EVERY:  # the first queries of a big batch need not wait
            self.flush()

    def _flush_soon(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        self._queued = 0
        if self._outbox is None:
            self._outbox = Outbox()
        for owner, conn in dirty:
            owner._flush(conn, self._outbox, retried=False)


class UpstreamSockets:
    """The sockets from one namespace to one server."""

    __slots__ = ("_factory", "_flusher", "_ids", "_loop", "_turn", "conns", "upstream")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        upstream: UpstreamLike,
        factory: SockFactory,
        ids: RandomIds,
        flusher: _Flusher | None = None,
    ) -> None:
        self._loop = loop
        self.upstream = upstream
        self._factory = factory
        self._ids = ids
        self._flusher = flusher if flusher is not None else _Flusher()
        self._turn = 0
        self.conns: list[UpstreamConn | None] = [None] * SOCKETS_PER_UPSTREAM

    def send(self, packet: bytes, query: Query, waiter: Waiter) -> Pending:
        """Queue `packet` with a fresh random id (sent after the loop's current callback);
        raises UpstreamUnreachable when no socket can be opened. A send that fails later is
        the waiter's `failed`."""
        turn = self._turn = (self._turn + 1) % SOCKETS_PER_UPSTREAM
        conn = self._conn(turn)
        ident = self._ids.take()
        while ident in conn.pending:
            ident = self._ids.take()
        conn.sent += 1
        waiting = conn.pending[ident] = Pending(conn, ident, query, waiter, packet)
        first = not conn.unsent
        conn.unsent.append((ident.to_bytes(2, "big") + packet[2:], waiting))
        self._flusher.queue(self, conn, first)
        return waiting

    def _flush(self, conn: UpstreamConn, outbox: Outbox, *, retried: bool) -> None:
        queued, conn.unsent = conn.unsent, []
        if conn.fd == -1:  # closed meanwhile (the sandbox went): its queries were failed
            return
        sent, error = send_all(outbox, conn, [data for data, _ in queued])
        if error is None:
            return
        rest = [
            pending for _, pending in queued[sent:] if conn.pending.get(pending.ident) is pending
        ]
        for pending in rest:
            del conn.pending[pending.ident]
        conn.retire()
        if self.conns[conn.turn] is conn:
            self.conns[conn.turn] = None
        name = describe(self.upstream, tcp=False)
        failure: UpstreamError = UpstreamUnreachable(f"{name}: cannot send: {error}", self.upstream)
        if not retried and not isinstance(error, BlockingIOError) and rest:
            # A socket holding an old ICMP error fails once: send them again on a new one.
            try:
                fresh = self._conn(conn.turn)
            except UpstreamUnreachable as exc:
                failure = exc
            else:
                for pending in rest:
                    ident = self._ids.take()
                    while ident in fresh.pending:
                        ident = self._ids.take()
                    pending.conn, pending.ident = fresh, ident
                    fresh.pending[ident] = pending
                    fresh.sent += 1
                    fresh.unsent.append((ident.to_bytes(2, "big") + pending.packet[2:], pending))
                self._flush(fresh, outbox, retried=True)
                return
        for pending in rest:
            pending.waiter.failed(failure)

    def sweep(self, now: float) -> bool:
        """Close the sockets that are past their lifetime and idle; True when none is left."""
        for turn, conn in enumerate(self.conns):
            if conn is not None and not conn.pending and now - conn.born >= SOCKET_LIFETIME_S:
                conn.close()
                self.conns[turn] = None
        return not any(self.conns)

    def close(self, error: UpstreamError) -> None:
        for conn in self.conns:
            if conn is not None:
                conn.fail_all(error)
        self.conns = [None] * SOCKETS_PER_UPSTREAM

    def _conn(self, turn: int) -> UpstreamConn:
        conn = self.conns[turn]
        if conn is not None:
            if (
                conn.sent < QUERIES_PER_SOCKET
                and self._loop.time() - conn.born < SOCKET_LIFETIME_S
                and not conn.retired
            ):
                return conn
            conn.retire()
        conn = self.conns[turn] = UpstreamConn(self._open(), self.upstream, self._loop, turn)
        return conn

    def _open(self) -> socket.socket:
        upstream = self.upstream
        try:
            sock = self._factory(family_of(upstream.address), socket.SOCK_DGRAM)
        except (OSError, ValueError, NetcoreError) as exc:  # e.g. the sandbox's netns is gone
            name = describe(upstream, tcp=False)
            raise UpstreamUnreachable(f"{name}: cannot open a socket: {exc}", upstream) from exc
        try:
            sock.setblocking(False)
            sock.connect((upstream.address, upstream.port))
        except OSError as exc:
            sock.close()
            name = describe(upstream, tcp=False)
            raise UpstreamUnreachable(f"{name} is unreachable: {exc}", upstream) from exc
        return sock


class UdpPools:
    """Every namespace's `UpstreamSockets`, by owner (a sandbox key, or "" for the daemon's
    namespace) and server; idle ones are closed every `SOCKET_LIFETIME_S`."""

    def __init__(self) -> None:
        self._owners: dict[str, dict[HealthKey, UpstreamSockets]] = {}
        self._ids = RandomIds()
        self._flusher = _Flusher()
        self._sweeper: asyncio.TimerHandle | None = None

    def sockets(
        self,
        loop: asyncio.AbstractEventLoop,
        owner: str,
        upstream: UpstreamLike,
        factory_for: Callable[[UpstreamLike], SockFactory],
    ) -> UpstreamSockets:
        """The sockets for `upstream` from `owner`'s namespace (`factory_for(upstream)` opens
        them; asked only when a socket is opened)."""
        key = health_key(upstream)
        pools = self._owners.get(owner)
        if pools is None:
            pools = self._owners[owner] = {}
        found = pools.get(key)
        if found is None:
            factory = _LazyFactory(factory_for, upstream)
            found = pools[key] = UpstreamSockets(loop, upstream, factory, self._ids, self._flusher)
            if self._sweeper is None:
                self._sweeper = loop.call_later(SOCKET_LIFETIME_S, self._sweep, loop)
        else:  # the sandbox's current listener opens its next sockets
            found._factory.factory_for = factory_for  # type: ignore[attr-defined]
        return found

    def forget(self, owner: str) -> None:
        """Close the sockets of a removed sandbox (queries waiting on them fail over)."""
        for pool in self._owners.pop(owner, {}).values():
            pool.close(UpstreamUnreachable("the sandbox was removed", pool.upstream))

    def close(self) -> None:
        for owner in list(self._owners):
            self.forget(owner)
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def open_sockets(self) -> int:
        return sum(
            conn is not None and conn.fd != -1
            for pools in self._owners.values()
            for pool in pools.values()
            for conn in pool.conns
        )

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for owner, pools in list(self._owners.items()):
            for key, pool in list(pools.items()):
                if pool.sweep(now):
                    del pools[key]
            if not pools:
                del self._owners[owner]
        self._sweeper = (
            loop.call_later(SOCKET_LIFETIME_S, self._sweep, loop) if self._owners else None
        )


class _LazyFactory:
    """`factory_for(upstream)` asked when a socket is opened, not on every query."""

    __slots__ = ("factory_for", "upstream")

    def __init__(self, factory_for: Callable[[UpstreamLike], SockFactory], upstream: UpstreamLike):
        self.factory_for = factory_for
        self.upstream = upstream

    def __call__(self, family: int, kind: int) -> socket.socket:
        return self.factory_for(self.upstream)(family, kind)
