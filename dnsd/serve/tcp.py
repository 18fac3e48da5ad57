"""TCP serving for one sandbox: 2-byte framing, pipelining, idle timeout, connection cap, and
a bound on the work one connection gets per loop turn.

Docker closes a connection after 128 queries; we keep it while it is active (RFC 7766) and
close it after `idle_s` without a complete message. Answers to pipelined queries are written
as they are ready: local ones at once, forwarded ones when the upstream answers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING

from ..core.answer import Forward, Reply, answer
from ..metrics.answered import answered_by

if TYPE_CHECKING:
    from ..metrics.counters import QueryStats
    from .handler import QueryHandler

log = logging.getLogger(__name__)

IDLE_S = 5.0  # aardvark-dns uses 3 s, Docker 2 s for a partial message
MAX_CONNECTIONS = 128  # per sandbox; more are closed at once
MAX_WRITE_BUFFER = 1 << 20  # a client that does not read its answers is cut off
MESSAGES_PER_TURN = 64  # per connection and loop turn, like a UDP batch: no client holds the loop
BACKLOG, WRITE_BLOCKED = "backlog", "write blocked"  # reasons to stop reading a connection


class TcpServer:
    def __init__(
        self,
        sock: socket.socket,
        sandbox_id: str,
        handler: QueryHandler,
        *,
        idle_s: float = IDLE_S,
        max_connections: int = MAX_CONNECTIONS,
        stats: QueryStats | None = None,
    ) -> None:
        self.stats = stats  # counted once per turn (metrics); None: counting off
        self.sock = sock
        self.sandbox_id = sandbox_id
        self.handler = handler
        self.idle_s = idle_s
        self.max_connections = max_connections
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self.rng = random.Random()
        # Host listeners only: whether a client address may connect (the others are closed).
        self.admit: Callable[[str], bool] | None = None

    async def start(self) -> None:
        self.sock.setblocking(False)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), sock=self.sock)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.abort()


class _Connection(asyncio.Protocol):
    def __init__(self, server: TcpServer) -> None:
        self.server = server
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.last_activity = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.paused: set[str] = set()  # why reading is paused (BACKLOG, WRITE_BLOCKED)
        self.drain: asyncio.Handle | None = None  # the next turn's _answer_some

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if len(self.server.connections) >= self.server.max_connections:
            log.debug("tcp: %s has too many connections", self.server.sandbox_id[:12])
            transport.close()
            return
        admit = self.server.admit
        if admit is not None:
            peer = transport.get_extra_info("peername")
            if not peer or not admit(peer[0]):
                log.debug("tcp: %s may not ask this listener", peer)
                transport.close()
                return
        self.server.connections.add(self)
        self.transport.set_write_buffer_limits(high=MAX_WRITE_BUFFER // 4)
        loop = asyncio.get_running_loop()
        self.last_activity = loop.time()
        self.timer = loop.call_later(self.server.idle_s, self._check_idle)

    def _check_idle(self) -> None:
        loop = asyncio.get_running_loop()
        idle_for = loop.time() - self.last_activity
        if idle_for >= self.server.idle_s and not self.tasks:
            self.abort()
        else:
            self.timer = loop.call_later(max(self.server.idle_s - idle_for, 0.1), self._check_idle)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.drain is None:
            self._answer_some()

    def _answer_some(self) -> None:
        """Answer at most MESSAGES_PER_TURN complete messages, then yield to the loop.

        A client pipelining queries can hand us megabytes in one loop turn (libuv reads a stream
        up to 32 times per wakeup): answered in one go, that stalled every other sandbox for up
        to a second. The rest waits for the next turn, with reading paused meanwhile."""
        self.drain = None
        buf, server = self.buf, self.server
        out = bytearray()
        consumed = answered = dropped = 0
        started, fresh = monotonic(), []
        while len(buf) - consumed >= 2 and answered < MESSAGES_PER_TURN:
            size = (buf[consumed] << 8) | buf[consumed + 1]
            if size == 0:  # nothing can follow a zero-length message sensibly
                self.abort()
                return
            end = consumed + 2 + size
            if len(buf) < end:
                break
            packet = bytes(buf[consumed + 2 : end])
            consumed = end
            answered += 1
            decision = answer(
                packet, server.sandbox_id, server.handler.view, tcp=True, rng=server.rng
            )
            if type(decision) is Reply:
                out += len(decision.data).to_bytes(2, "big") + decision.data
                fresh.append(decision.data)
            elif type(decision) is Forward:
                task = asyncio.ensure_future(self._forward(packet, decision))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            else:
                dropped += 1
        if server.stats is not None and answered:
            server.stats.batch((), fresh, dropped, monotonic() - started)
        if consumed:
            del buf[:consumed]
            self.last_activity = asyncio.get_running_loop().time()
        if self.transport is None:
            return
        if out:
            self.transport.write(out)
            if self.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
                self.abort()
                return
        if answered == MESSAGES_PER_TURN and _complete_message(buf):
            self._pause(BACKLOG)
            self.drain = asyncio.get_running_loop().call_soon(self._answer_some)
        else:
            self._resume(BACKLOG)

    async def _forward(self, packet: bytes, decision: Forward) -> None:
        server = self.server
        started = monotonic()
        reply = await server.handler.forward(packet, decision, server.sandbox_id, tcp=True)
        if server.stats is not None:
            server.stats.forwarded(reply, monotonic() - started, answered_by.get())
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(len(reply).to_bytes(2, "big") + reply)
            self.last_activity = asyncio.get_running_loop().time()

    def pause_writing(self) -> None:  # the client is not reading: stop reading its queries
        self._pause(WRITE_BLOCKED)

    def resume_writing(self) -> None:
        self._resume(WRITE_BLOCKED)

    def _pause(self, reason: str) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused.add(reason)

    def _resume(self, reason: str) -> None:
        if reason not in self.paused:
            return
        self.paused.discard(reason)
        if not self.paused and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
        if self.drain is not None:
            self.drain.cancel()
        for task in self.tasks:
            task.cancel()
        self.transport = None


def _complete_message(buf: bytearray) -> bool:
    """Whether `buf` starts with a whole length-prefixed message (or a zero length)."""
    if len(buf) < 2:
        return False
    size = (buf[0] << 8) | buf[1]
    return size == 0 or len(buf) >= 2 + size
