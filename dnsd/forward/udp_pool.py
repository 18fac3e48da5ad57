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
import os
import socket
from collections.abc import Callable
from typing import Protocol

from netcore.errors import NetcoreError

from ..core.wire import MAX_MESSAGE, Query, is_answer_to
from ..serve.mmsg import MAX_DATAGRAM, Outbox
from .client import SockFactory, UpstreamError, UpstreamUnreachable, describe, family_of
from .health import HealthKey, UpstreamLike, health_key

log = logging.getLogger(__name__)

SOCKETS_PER_UPSTREAM = 4
QUERIES_PER_SOCKET = 100
SOCKET_LIFETIME_S = 10.0
FLUSH_EVERY = 16  # queued queries sent at once at most: a batch's first ones need not wait
READS_PER_WAKEUP = 64  # replies read per readable socket per wakeup, then the loop moves on


class Waiter(Protocol):
    """Who waits on a query sent here (a `race._Try`): told its reply or its error, once.
    Methods rather than closures: a query costs no function objects and no reference cycle
    for the garbage collector."""

    def replied(self, reply: bytes) -> None: ...

    def failed(self, error: UpstreamError) -> None: ...


class _RandomIds:
    """16-bit ids from os.urandom, read 2,048 at a time (one system call per 2,048 queries)."""

    __slots__ = ("_buffer", "_next")

    def __init__(self) -> None:
        self._buffer = b""
        self._next = 0

    def take(self) -> int:
        at = self._next
        if at >= len(self._buffer):
            self._buffer, at = os.urandom(4096), 0
        self._next = at + 2
        return (self._buffer[at] << 8) | self._buffer[at + 1]


class Pending:
    """One query waiting on one socket; `cancel` it when its answer is no longer wanted."""

    __slots__ = ("conn", "ident", "packet", "query", "waiter")

    def __init__(
        self, conn: _Conn, ident: int, query: Query, waiter: Waiter, packet: bytes = b""
    ) -> None:
        self.conn = conn
        self.ident = ident
        self.query = query
        self.waiter = waiter
        self.packet = packet  # as sent (but its id), for a resend on a fresh socket

    def cancel(self) -> None:
        conn = self.conn
        if conn.pending.get(self.ident) is self:
            del conn.pending[self.ident]
            if conn.retired and not conn.pending:
                conn.close()


class _Conn:
    """One connected socket and the queries waiting on it (by the id they were sent with)."""

    __slots__ = (
        "born", "fd", "loop", "pending", "retired", "sent", "sock", "turn", "unsent", "upstream",
    )  # fmt: skip

    def __init__(
        self,
        sock: socket.socket,
        upstream: UpstreamLike,
        loop: asyncio.AbstractEventLoop,
        turn: int = 0,
    ) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.upstream = upstream
        self.loop = loop
        self.turn = turn  # its place in `UpstreamSockets.conns`
        self.pending: dict[int, Pending] = {}
        self.unsent: list[tuple[bytes, Pending]] = []  # queued by `send`, out at the flush
        self.sent = 0
        self.born = loop.time()
        self.retired = False
        loop.add_reader(self.fd, self._readable)

    def retire(self) -> None:
        self.retired = True
        if not self.pending:
            self.close()

    def close(self) -> None:
        if self.fd != -1:
            self.loop.remove_reader(self.fd)
            self.sock.close()
            self.fd = -1

    def fail_all(self, error: UpstreamError) -> None:
        waiting = list(self.pending.values())
        self.pending.clear()
        self.retire()
        for pending in waiting:
            pending.waiter.failed(error)

    def _readable(self) -> None:
        pending, recv = self.pending, self.sock.recv
        for _ in range(READS_PER_WAKEUP):
            try:
                data = recv(MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError as exc:  # ICMP unreachable: about this server, for every query here
                name = describe(self.upstream, tcp=False)
                self.fail_all(UpstreamUnreachable(f"{name} is unreachable: {exc}", self.upstream))
                return
            if len(data) < 12:
                continue
            waiting = pending.get((data[0] << 8) | data[1])
            if waiting is None:
                continue  # nobody asked with that id (any more): a spoof or a late answer
            reply = waiting.query.id.to_bytes(2, "big") + data[2:]
            if not is_answer_to(reply, waiting.query):
                continue  # the right id, the wrong question: keep waiting
            del pending[waiting.ident]
            if self.retired and not pending:
                self.close()
            waiting.waiter.replied(reply)
            if self.fd == -1:
                return


class _Flusher:
    """The sockets with queued queries, sent right after the loop's current callback."""

    __slots__ = ("_dirty", "_outbox", "_queued", "_scheduled")

    def __init__(self) -> None:
        self._dirty: list[tuple[UpstreamSockets, _Conn]] = []
        self._outbox: Outbox | None = None
        self._queued = 0
        self._scheduled = False

    def queue(self, owner: UpstreamSockets, conn: _Conn, first: bool) -> None:
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
        ids: _RandomIds,
        flusher: _Flusher | None = None,
    ) -> None:
        self._loop = loop
        self.upstream = upstream
        self._factory = factory
        self._ids = ids
        self._flusher = flusher if flusher is not None else _Flusher()
        self._turn = 0
        self.conns: list[_Conn | None] = [None] * SOCKETS_PER_UPSTREAM

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

    def _flush(self, conn: _Conn, outbox: Outbox, *, retried: bool) -> None:
        queued, conn.unsent = conn.unsent, []
        if conn.fd == -1:  # closed meanwhile (the sandbox went): its queries were failed
            return
        sent, error = _send_all(outbox, conn, [data for data, _ in queued])
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

    def _conn(self, turn: int) -> _Conn:
        conn = self.conns[turn]
        if conn is not None:
            if (
                conn.sent < QUERIES_PER_SOCKET
                and self._loop.time() - conn.born < SOCKET_LIFETIME_S
                and not conn.retired
            ):
                return conn
            conn.retire()
        conn = self.conns[turn] = _Conn(self._open(), self.upstream, self._loop, turn)
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
        self._ids = _RandomIds()
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


def _send_all(outbox: Outbox, conn: _Conn, messages: list[bytes]) -> tuple[int, OSError | None]:
    """`messages` to the socket's server: one sendmmsg per slot-sized run, a send of its own
    for a message longer than a slot."""
    sent = 0
    while sent < len(messages):
        data = messages[sent]
        if len(data) > MAX_DATAGRAM:
            try:
                conn.sock.send(data)
            except OSError as exc:
                return sent, exc
            sent += 1
            continue
        end = sent + 1
        while end < len(messages) and len(messages[end]) <= MAX_DATAGRAM:
            end += 1
        count, error = outbox.send(conn.fd, messages[sent:end])
        sent += count
        if error is not None:
            return sent, error
    return sent, None
