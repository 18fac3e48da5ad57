"""UDP serving for one sandbox: drain the socket on each wakeup, answer inline, in batches.

No asyncio transport: `loop.add_reader` plus recvmmsg/sendmmsg (mmsg.py) reads a batch of
queries with one system call and sends their answers with another, instead of a callback and
two system calls per datagram (issue 5's measurements). Works the same on asyncio and uvloop.
The replies the listener remembers and the forward cache's hits are found and sent by
`Batch.answer_known` (a C loop when the accelerator is built: no Python per such query); the
other local answers are sent from the callback too. A forward that misses
the cache is started from it too (`forward_soon`, no task) and answered when its reply comes,
together with the other replies that came back meanwhile (one sendmmsg after the loop's
callback, or every FLUSH_EVERY): one system call and one wake-up of the client per burst.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Callable
from functools import partial
from time import monotonic
from typing import TYPE_CHECKING

from ..core.answer import Forward, Reply, answer
from ..core.cache import ReplyCache
from ..core.wire import refused_reply
from ..metrics.answered import answered_by
from .mmsg import MAX_DATAGRAM, Batch, Outbox, decode_sender

if TYPE_CHECKING:
    from ..metrics.counters import QueryStats
    from .handler import QueryHandler

log = logging.getLogger(__name__)

ROUNDS = 4  # batches per wakeup, so one busy sandbox cannot starve the others
FLUSH_EVERY = 16  # replies sent per system call at most: latency, not only throughput
_batch: Batch | None = None
_outbox: Outbox | None = None


def shared_batch() -> Batch:
    """The batch buffers every UDP server of this process shares (one event loop)."""
    global _batch
    if _batch is None:
        _batch = Batch()
    return _batch


def shared_outbox() -> Outbox:
    """The buffers forwarded replies are sent from, shared like `shared_batch`."""
    global _outbox
    if _outbox is None:
        _outbox = Outbox()
    return _outbox


class UdpServer:
    def __init__(
        self,
        sock: socket.socket,
        sandbox_id: str,
        handler: QueryHandler,
        stats: QueryStats | None = None,
    ) -> None:
        self.sock = sock
        self.sandbox_id = sandbox_id
        self.handler = handler
        self.stats = stats  # counted once per batch (metrics); None: counting off
        self._hits: list[bytes] = []  # the current batch's cached and fresh local replies
        self._fresh: list[bytes] = []
        self._recalled: list[bytes] = []  # bodies of answers from the forward cache
        self._rng = random.Random()
        self._cache = ReplyCache()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Forwarded replies come back one by one (each upstream wakeup may bring many): they
        # are sent together right after the loop's current callback, or every FLUSH_EVERY.
        self._replies: list[bytes] = []
        self._reply_names: list[bytes] = []
        self._flush_scheduled = False
        # Host listeners only: whether a client address may ask (the others get REFUSED).
        self.admit: Callable[[str], bool] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.sock.setblocking(False)
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def _readable(self) -> None:
        batch, fd, cache = shared_batch(), self.sock.fileno(), self._cache
        sid, rng = self.sandbox_id, self._rng
        view = self.handler.view
        remembered = cache.entries(view)  # the hot path: one slice, one lookup (in C if built)
        table = self.handler.hit_table(sid, view)
        recall = table.get if table is not None else None  # the forward cache's, alike
        forward_cached = self.handler.cached
        queue_reply, flush = batch.queue_reply, batch.flush
        stats, hits, fresh, forwarded = self.stats, self._hits, self._fresh, self._recalled
        admit = self.admit
        if admit is not None:  # a host listener: every datagram is looked at here, first
            known, recall_known = None, None
        else:
            known, recall_known = remembered, recall
        for _ in range(ROUNDS):
            started = monotonic()
            try:
                received, others = batch.answer_known(fd, known, recall_known, hits, forwarded)
            except OSError as exc:  # e.g. an ICMP error queued on the socket
                log.debug("udp recv in %s: %s", sid[:12], exc)
                return
            queued = dropped = 0
            for index, packet in others:
                reply = None
                if admit is not None:  # a host listener: the asker first, then its cache
                    if not admit(batch.sender(index)[0]):
                        reply = refused_reply(packet)
                        if reply is None:
                            dropped += 1
                            continue
                    elif (body := remembered.get(packet[2:])) is not None:
                        reply = packet[:2] + body
                        hits.append(body)
                if reply is None:
                    decision = answer(packet, sid, view, tcp=False, rng=rng)
                    if type(decision) is Reply:
                        reply = decision.data
                        fresh.append(reply)
                        cache.put(packet, reply, view)
                    elif type(decision) is Forward:
                        reply = forward_cached(decision, sid, packet)  # no task either
                        if reply is None:
                            self._forward_soon(packet, decision, batch.sender_name(index))
                            continue
                        forwarded.append(reply[2:])
                    else:
                        dropped += 1
                        continue  # Drop
                if not queue_reply(fd, index, reply):
                    self._send_alone(reply, batch.sender(index))
                    continue
                queued += 1
                if queued == FLUSH_EVERY:  # the first answers of a big batch need not wait
                    flush(fd)
                    queued = 0
            flush(fd)
            if stats is not None and received:  # the one counting call of a batch
                stats.batch(hits, fresh, dropped, monotonic() - started, forwarded)
            hits.clear()
            fresh.clear()
            forwarded.clear()
            if received < batch.size:
                return

    @property
    def cached_replies(self) -> int:
        return len(self._cache)

    def _forward_soon(self, packet: bytes, decision: Forward, name: bytes) -> None:
        reply_to = partial(self._forwarded, name, monotonic())
        self.handler.forward_soon(packet, decision, self.sandbox_id, tcp=False, reply_to=reply_to)

    def _forwarded(self, name: bytes, started: float, reply: bytes) -> None:
        """The reply to a forwarded query of the client at raw sockaddr `name`."""
        if self.stats is not None:  # `answered_by` is set while the forwarder calls back
            self.stats.forwarded(reply, monotonic() - started, answered_by.get())
        if len(reply) > MAX_DATAGRAM:
            self._send_alone(reply, decode_sender(name))
            return
        self._replies.append(reply)
        self._reply_names.append(name)
        if len(self._replies) >= FLUSH_EVERY:
            self._flush_forwarded()
        elif not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_scheduled = False
        self._flush_forwarded()

    def _flush_forwarded(self) -> None:
        replies, names = self._replies, self._reply_names
        if not replies:
            return
        self._replies, self._reply_names = [], []
        if self.sock.fileno() == -1:  # closed while the upstream was asked
            return
        fd, outbox, done = self.sock.fileno(), shared_outbox(), 0
        while done < len(replies):
            sent, error = outbox.send(fd, replies[done:], names[done:])
            done += sent
            if error is not None:  # a full buffer or a client gone: that reply is lost
                log.debug("udp send in %s: %s", self.sandbox_id[:12], error)
                done += 1

    def _send_alone(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.sock.fileno() == -1:  # closed while the upstream was asked
            return
        try:
            self.sock.sendto(data, addr)
        except OSError as exc:
            log.debug("udp send in %s: %s", self.sandbox_id[:12], exc)
