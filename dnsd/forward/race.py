"""One forwarded query asking its upstream servers in turn, driven by callbacks, not a task.

The rules are `forwarder`'s (module docstring): servers in health order, each given a slot
before the next is asked as well, the earlier ones still heard until the deadline; an
unreachable server or a SERVFAIL/REFUSED/non-authoritative NXDOMAIN hands over at once; a good
answer ends it; at the deadline the last answer received, else SERVFAIL.

A UDP try is a `upstream_conn.Pending` (a reply or an error calls back); a TCP try is a task of
`client.exchange` (TCP is rare: a connection per query anyway). Wake-ups (a slot's end, the
deadline) come from the forwarder's `Deadlines`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..core.wire import FLAG_AA, NXDOMAIN, RCODE_MASK, REFUSED, SERVFAIL, Query, forward_error_reply
from ..metrics.answered import answered_by
from ..metrics.counters import upstream_labels
from .client import SockFactory, UpstreamError, UpstreamTimeout, describe, exchange
from .deadlines import Deadlines, Entry
from .health import UpstreamLike, health_key

if TYPE_CHECKING:
    from .forwarder import Forwarder

Done = Callable[[bytes], None]
MAX_UPSTREAMS = 3  # Docker and glibc use at most 3 nameservers (row O09)
MIN_TRY_S = 0.25  # a try shorter than this would hand over before a distant server can answer


def needs_next_server(reply: bytes) -> bool:
    """Docker's rule 12: SERVFAIL, REFUSED and non-authoritative NXDOMAIN ask the next server."""
    flags = (reply[2] << 8) | reply[3]
    rcode = flags & RCODE_MASK
    return rcode in (SERVFAIL, REFUSED) or (rcode == NXDOMAIN and not flags & FLAG_AA)


def try_slot(deadline_s: float, remaining_s: float) -> float:
    """How long a server has before the next one is asked as well (`forwarder`'s docstring)."""
    return min(remaining_s, max(deadline_s / MAX_UPSTREAMS, MIN_TRY_S))


class _Try:
    """One server asked; the `upstream_conn.Waiter` of its UDP query. `handle` is dropped when the
    try ends: it refers back to this try (no cycle is left for the garbage collector)."""

    __slots__ = ("failure_recorded", "handle", "key", "race", "slot_end", "started", "upstream")

    def __init__(self, race: Race, upstream: UpstreamLike, started: float, slot_end: float) -> None:
        self.race = race
        self.upstream = upstream
        self.key = health_key(upstream)
        self.started = started
        self.slot_end = slot_end
        self.failure_recorded = False
        self.handle: object = None  # Pending (UDP) or Task (TCP)

    def replied(self, reply: bytes) -> None:
        self.race._replied(self, reply)

    def failed(self, error: Exception) -> None:
        self.race._failed(self, error)


class Race:
    """Started by `Forwarder.start`; calls `done(reply)` exactly once unless `cancel`led."""

    __slots__ = (
        "_answered_by",
        "_candidates",
        "_deadline",
        "_done",
        "_factory_for",
        "_forwarder",
        "_last_reply",
        "_loop",
        "_next_index",
        "_next_start",
        "_packet",
        "_query",
        "_sandbox_key",
        "_tcp",
        "_tries",
        "_wake",
        "_wake_at",
    )

    def __init__(
        self,
        forwarder: Forwarder,
        loop: asyncio.AbstractEventLoop,
        packet: bytes,
        query: Query,
        candidates: Sequence[UpstreamLike],
        *,
        tcp: bool,
        sandbox_key: str,
        factory_for: Callable[[UpstreamLike], SockFactory],
        done: Done,
        now: float,
    ) -> None:
        self._forwarder = forwarder
        self._loop = loop
        self._packet = packet
        self._query = query
        self._candidates = candidates
        self._tcp = tcp
        self._sandbox_key = sandbox_key
        self._factory_for = factory_for
        self._done: Done | None = done
        self._deadline = now + forwarder.deadline_s
        self._next_index = 0
        self._next_start = now
        self._tries: list[_Try] = []
        self._last_reply: bytes | None = None
        self._answered_by: str | None = None  # the server whose reply is relayed (query log)
        self._wake: Entry | None = None
        self._wake_at = 0.0
        self._advance(now)

    def cancel(self) -> None:
        """Nobody wants the answer any more: stop asking, call nobody."""
        if self._done is not None:
            self._done = None
            self._stop()

    # --- the state machine ---

    def _advance(self, now: float) -> None:
        deadlines = self._deadlines()
        while self._done is not None:
            if now >= self._deadline:
                self._finish(None, now)
                return
            index = self._next_index
            if index < len(self._candidates) and (now >= self._next_start or not self._tries):
                self._next_index = index + 1
                self._next_start = now + self._forwarder.slot(self._deadline - now)
                self._launch(self._candidates[index], now)
                continue
            if not self._tries:
                self._finish(None, now)
                return
            wake_at = (
                self._next_start if self._next_index < len(self._candidates) else self._deadline
            )
            if self._wake is None or self._wake_at != wake_at:
                if self._wake is not None:
                    deadlines.cancel(self._wake)
                self._wake = deadlines.at(wake_at, self._woken)
                self._wake_at = wake_at
            return

    def _launch(self, upstream: UpstreamLike, now: float) -> None:
        attempt = _Try(self, upstream, now, self._next_start)
        self._forwarder.stats.ask(attempt.key)
        if self._tcp:
            task = self._loop.create_task(
                exchange(
                    self._packet,
                    upstream,
                    query=self._query,
                    tcp=True,
                    deadline=self._deadline,
                    sock_factory=lambda family, kind: self._factory_for(upstream)(family, kind),
                )
            )
            attempt.handle = task
            task.add_done_callback(lambda task: self._tcp_done(attempt, task))
        else:
            pool = self._forwarder.pools.sockets(
                self._loop, "" if upstream.host_loopback else self._sandbox_key, upstream,
                self._factory_for,
            )  # fmt: skip
            try:
                attempt.handle = pool.send(self._packet, self._query, attempt)
            except Exception as exc:  # cannot even send (or a bug): hand over at once
                self._note_failure(attempt, exc, now)
                self._next_start = now
                return
        self._tries.append(attempt)

    def _woken(self, now: float) -> None:
        self._wake = None
        for attempt in self._tries:
            if now >= attempt.slot_end and not attempt.failure_recorded:
                # Silent for its whole slot: ask it last next time, even if it answers late.
                attempt.failure_recorded = True
                self._forwarder.health.record_failure(attempt.upstream, now)
                self._forwarder.stats.fail(attempt.key)
        self._advance(now)

    def _replied(self, attempt: _Try, reply: bytes) -> None:
        if self._done is None:
            return
        now = self._loop.time()
        self._tries.remove(attempt)
        attempt.handle = None
        self._forwarder.health.record_success(attempt.upstream, now)
        self._forwarder.stats.answer(attempt.key, reply, now - attempt.started)
        self._answered_by = upstream_labels(attempt.key)[0]
        if not needs_next_server(reply):
            self._finish(reply, now)
            return
        self._last_reply, self._next_start = reply, now
        self._advance(now)

    def _failed(self, attempt: _Try, error: Exception) -> None:
        if self._done is None:
            return
        now = self._loop.time()
        self._tries.remove(attempt)
        attempt.handle = None
        self._note_failure(attempt, error, now)
        self._next_start = now  # hand over to the next server at once
        self._advance(now)

    def _tcp_done(self, attempt: _Try, task: asyncio.Task[bytes]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            self._replied(attempt, task.result())
        else:
            self._failed(attempt, error)

    def _note_failure(self, attempt: _Try, error: Exception, now: float) -> None:
        forwarder = self._forwarder
        key = attempt.key
        if isinstance(error, UpstreamError):
            if not attempt.failure_recorded:
                attempt.failure_recorded = True
                forwarder.health.record_failure(attempt.upstream, now)
                forwarder.stats.fail(key)
            forwarder.warn(("upstream", key), now, "forward: %s", error)
            return
        # A bug must cost one try, not the client's answer.
        forwarder.warn(
            ("bug", key), now, "forward: unexpected error asking %s: %r",
            attempt.upstream, error, exc_info=error,
        )  # fmt: skip

    def _finish(self, reply: bytes | None, now: float) -> None:
        done = self._done
        if done is None:
            return
        self._done = None
        if reply is None:
            for attempt in self._tries:  # still silent at the deadline
                name = describe(attempt.upstream, self._tcp)
                self._note_failure(
                    attempt,
                    UpstreamTimeout(
                        f"{name} did not answer in time; check that it is reachable from "
                        "the sandbox",
                        attempt.upstream,
                    ),
                    now,
                )
        self._stop()
        if reply is None:
            reply = self._last_reply
        if reply is None:
            self._answered_by = None
            reply = forward_error_reply(self._query, SERVFAIL)
        # Read by whoever `done` hands the reply to (the listener's query log), then unset:
        # the callbacks run in a context that outlives this query.
        token = answered_by.set(self._answered_by)
        try:
            done(reply)
        finally:
            answered_by.reset(token)

    def _stop(self) -> None:
        if self._wake is not None:
            self._deadlines().cancel(self._wake)
            self._wake = None
        for attempt in self._tries:
            attempt.handle.cancel()  # type: ignore[attr-defined]
            attempt.handle = None
        self._tries.clear()
        self._forwarder.finished(self._sandbox_key)

    def _deadlines(self) -> Deadlines:
        return self._forwarder.deadlines(self._loop)
