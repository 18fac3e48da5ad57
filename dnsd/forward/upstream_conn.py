"""One connected UDP socket to an upstream server and the queries waiting on it.

`udp_pool.UpstreamSockets` keeps a few of these per namespace and server. A reply is matched
by the id it was sent with and by its question (`core.wire.is_answer_to`); the client's id is
put back. A datagram that matches nothing waiting is ignored (a spoof, or a late answer); an
ICMP unreachable fails every query waiting on the socket: they all went to that server.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Protocol

from ..core.wire import MAX_MESSAGE, Query, is_answer_to
from ..serve.mmsg import MAX_DATAGRAM, Outbox
from .client import UpstreamError, UpstreamUnreachable, describe
from .health import UpstreamLike

READS_PER_WAKEUP = 64  # replies read per readable socket per wakeup, then the loop moves on


class Waiter(Protocol):
    """Who waits on a query sent here (a `race._Try`): told its reply or its error, once.
    Methods rather than closures: a query costs no function objects and no reference cycle
    for the garbage collector."""

    def replied(self, reply: bytes) -> None: ...

    def failed(self, error: UpstreamError) -> None: ...


class RandomIds:
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
        self, conn: UpstreamConn, ident: int, query: Query, waiter: Waiter, packet: bytes = b""
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


class UpstreamConn:
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


def send_all(
    outbox: Outbox, conn: UpstreamConn, messages: list[bytes]
) -> tuple[int, OSError | None]:
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
