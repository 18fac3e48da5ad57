"""Forward a query the local zone does not answer to the sandbox's upstream servers.

Docker's rules (reference rules 9, 11, 12; moby `forwardExtDNS`): at most the first 3 servers;
the client's bytes are sent unchanged over the client's transport and the reply is relayed
as-is (TC included: the client retries over TCP itself); the next server is asked on a timeout,
an unreachable server, SERVFAIL, REFUSED or a non-authoritative NXDOMAIN, and when no reply is
good enough the LAST one received is relayed.

Where we differ (reference README): one budget (`deadline_s`, 5 s like aardvark-dns) for the
whole forward instead of 4 s per server, SERVFAIL when nobody answered instead of silence, and
servers that just failed are asked last (`UpstreamHealth`).

Per-try timeout, staggered ("hedged") rather than sequential: each server gets a slot of
`max(deadline_s / 3, MIN_TRY_S)` (capped at what remains). When the slot ends the next server is
asked as well, but the earlier sockets stay open until the deadline, so a server that is slow
(not dead) can still win, and a short slot wastes nothing. A fixed third of the budget rather
than `remaining / servers_left`: with 5 s a blackholed server delays the next one by 1.67 s
whether 2 or 3 servers are configured (the split would give 2.5 s with 2), and the k-th server
is asked after at most k x 1.67 s. An unreachable or refusing server hands over at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Callable, Sequence

from netcore.errors import InvalidArgument

from ..core.wire import (
    FLAG_AA,
    NXDOMAIN,
    RCODE_MASK,
    REFUSED,
    SERVFAIL,
    Query,
    forward_error_reply,
)
from ..metrics.answered import answered_by
from ..metrics.counters import UpstreamStats, upstream_labels
from .client import SockFactory, UpstreamError, exchange
from .health import UpstreamHealth, UpstreamLike, health_key

log = logging.getLogger(__name__)

DEFAULT_DEADLINE_S = 5.0  # whole forward; stub resolvers (glibc: 5 s) give up soon after
MAX_UPSTREAMS = 3  # Docker and glibc use at most 3 nameservers (row O09)
MAX_INFLIGHT = 1024  # per sandbox, as moby's semaphore: one sandbox cannot exhaust the daemon
MIN_TRY_S = 0.25  # a try shorter than this would hand over before a distant server can answer
WARN_INTERVAL_S = 10.0  # one warning per reason and sandbox/server per interval


def needs_next_server(reply: bytes) -> bool:
    """Docker's rule 12: SERVFAIL, REFUSED and non-authoritative NXDOMAIN ask the next server."""
    flags = (reply[2] << 8) | reply[3]
    rcode = flags & RCODE_MASK
    return rcode in (SERVFAIL, REFUSED) or (rcode == NXDOMAIN and not flags & FLAG_AA)


def try_slot(deadline_s: float, remaining_s: float) -> float:
    """How long a server has before the next one is asked as well (see the module docstring)."""
    return min(remaining_s, max(deadline_s / MAX_UPSTREAMS, MIN_TRY_S))


class _TokenBucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp

    def take(self, now: float, qps: float, burst: float) -> bool:
        self.tokens = min(burst, self.tokens + (now - self.stamp) * qps)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class _WarnThrottle:
    """At most one log line per key per interval; the next one says how many were skipped."""

    __slots__ = ("_seen", "interval_s")

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._seen: dict[object, tuple[float, int]] = {}

    def warn(
        self, key: object, now: float, message: str, *args: object, exc_info: object = None
    ) -> None:
        last, skipped = self._seen.get(key, (float("-inf"), 0))
        if now - last < self.interval_s:
            self._seen[key] = (last, skipped + 1)
            return
        if len(self._seen) > 4096:  # forget keys that have been quiet for a whole interval
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.interval_s}
        self._seen[key] = (now, 0)
        suffix = f" ({skipped} similar messages suppressed)" if skipped else ""
        log.warning(message + suffix, *args, exc_info=exc_info)  # type: ignore[arg-type]


class _Try:
    __slots__ = ("failure_recorded", "key", "slot_end", "started", "upstream")

    def __init__(self, upstream: UpstreamLike, started: float, slot_end: float) -> None:
        self.upstream = upstream
        self.key = health_key(upstream)
        self.started = started
        self.slot_end = slot_end
        self.failure_recorded = False


class Forwarder:
    """Forwards queries for every sandbox of one daemon; see the module docstring for rules."""

    def __init__(
        self,
        health: UpstreamHealth,
        *,
        deadline_s: float = DEFAULT_DEADLINE_S,
        max_inflight: int = MAX_INFLIGHT,
        rate_limit: tuple[float, float] | None = None,
    ) -> None:
        if deadline_s <= 0:
            raise InvalidArgument(f"must be > 0 seconds, got {deadline_s}", field="deadline_s")
        if max_inflight < 1:
            raise InvalidArgument(f"must be >= 1, got {max_inflight}", field="max_inflight")
        if rate_limit is not None and (rate_limit[0] <= 0 or rate_limit[1] < 1):
            raise InvalidArgument(
                f"(qps, burst) needs qps > 0 and burst >= 1, got {rate_limit}; "
                "use None to turn rate limiting off",
                field="rate_limit",
            )
        self.health = health
        self.deadline_s = deadline_s
        self.max_inflight = max_inflight
        self.rate_limit = rate_limit
        self._inflight: dict[str, int] = {}
        self._buckets: dict[str, _TokenBucket] = {}
        self._throttle = _WarnThrottle(WARN_INTERVAL_S)
        self.stats = UpstreamStats()  # read by the metrics collector

    def inflight_total(self) -> int:
        """Forwards of every sandbox currently waiting on upstreams."""
        return sum(self._inflight.values())

    def inflight(self, sandbox_key: str) -> int:
        """Forwards of this sandbox currently waiting on upstreams."""
        return self._inflight.get(sandbox_key, 0)

    def forget(self, sandbox_key: str) -> None:
        """Drop the rate-limit state of a removed sandbox."""
        self._buckets.pop(sandbox_key, None)

    async def forward(
        self,
        packet: bytes,
        query: Query,
        upstreams: Sequence[UpstreamLike],
        *,
        tcp: bool,
        sandbox_key: str,
        sock_factory_for: Callable[[UpstreamLike], SockFactory],
    ) -> bytes:
        """The reply to relay to the client for `packet`; never raises for upstream trouble.

        `query` is `core.wire.parse_query(packet)`, as the listener parsed it (the `Forward`
        decision's): upstream replies are matched against it, nothing is parsed again.
        `sock_factory_for(upstream)` gives the socket factory for that server: inside the
        sandbox's namespace, or the daemon's for `host_loopback` servers.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not upstreams:
            self._throttle.warn(
                ("no-upstreams", sandbox_key),
                now,
                "forward: sandbox %s has no upstream servers; answering SERVFAIL "
                "(give it --dns servers or a nameserver in the host's resolv.conf)",
                sandbox_key,
            )
            return forward_error_reply(query, SERVFAIL)
        if not self._admit(sandbox_key, now):
            return forward_error_reply(query, REFUSED)
        self._inflight[sandbox_key] = self._inflight.get(sandbox_key, 0) + 1
        try:
            return await self._race(packet, query, upstreams, tcp, sock_factory_for, now)
        finally:
            remaining = self._inflight[sandbox_key] - 1
            if remaining:
                self._inflight[sandbox_key] = remaining
            else:
                del self._inflight[sandbox_key]

    def _admit(self, sandbox_key: str, now: float) -> bool:
        if self._inflight.get(sandbox_key, 0) >= self.max_inflight:
            self.stats.refused["inflight"] += 1
            self._throttle.warn(
                ("inflight", sandbox_key),
                now,
                "forward: sandbox %s has %d queries waiting on upstreams; answering REFUSED",
                sandbox_key,
                self.max_inflight,
            )
            return False
        if self.rate_limit is None:
            return True
        qps, burst = self.rate_limit
        bucket = self._buckets.get(sandbox_key)
        if bucket is None:
            if len(self._buckets) > 4096:  # full buckets carry no state worth keeping
                self._buckets = {
                    k: b for k, b in self._buckets.items() if (now - b.stamp) * qps < burst
                }
            bucket = self._buckets[sandbox_key] = _TokenBucket(burst, now)
        if bucket.take(now, qps, burst):
            return True
        self.stats.refused["rate"] += 1
        self._throttle.warn(
            ("rate", sandbox_key),
            now,
            "forward: sandbox %s exceeds %g queries/s (burst %g); answering REFUSED",
            sandbox_key,
            qps,
            burst,
        )
        return False

    async def _race(
        self,
        packet: bytes,
        query: Query,
        upstreams: Sequence[UpstreamLike],
        tcp: bool,
        sock_factory_for: Callable[[UpstreamLike], SockFactory],
        start: float,
    ) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = start + self.deadline_s
        # First 3 as configured, then health order: a 4th server is never asked (row O09).
        candidates = self.health.order(list(upstreams[:MAX_UPSTREAMS]), start)
        running: dict[asyncio.Task[bytes], _Try] = {}
        last_reply: bytes | None = None
        next_index, next_start = 0, start
        try:
            while True:
                now = loop.time()
                if now >= deadline:
                    break
                if next_index < len(candidates) and (now >= next_start or not running):
                    upstream = candidates[next_index]
                    next_index += 1
                    next_start = now + try_slot(self.deadline_s, deadline - now)
                    coro = exchange(
                        packet,
                        upstream,
                        query=query,
                        tcp=tcp,
                        deadline=deadline,
                        # Called inside exchange(), so a failing factory costs one try only.
                        sock_factory=functools.partial(_open_socket, sock_factory_for, upstream),
                    )
                    attempt = _Try(upstream, now, next_start)
                    self.stats.ask(attempt.key)
                    running[loop.create_task(coro)] = attempt
                    continue
                if not running:
                    break
                wake_at = next_start if next_index < len(candidates) else deadline
                done, _ = await asyncio.wait(
                    running, timeout=max(0.0, wake_at - now), return_when=asyncio.FIRST_COMPLETED
                )
                now = loop.time()
                for attempt in running.values():
                    if now >= attempt.slot_end and not attempt.failure_recorded:
                        # Silent for its whole slot: ask it last next time, even if it answers late.
                        attempt.failure_recorded = True
                        self.health.record_failure(attempt.upstream, now)
                        self.stats.fail(attempt.key)
                for task in done:
                    attempt = running.pop(task)
                    reply = self._outcome(task, attempt, now)
                    if reply is None:
                        next_start = now  # hand over to the next server at once
                    elif not needs_next_server(reply):
                        return reply
                    else:
                        last_reply, next_start = reply, now
        finally:
            for task in running:
                task.cancel()
            if running:  # let each exchange close its socket before we return
                await asyncio.wait(running)
                for task in running:  # mark outcomes as seen: nobody wants them any more
                    if not task.cancelled():
                        task.exception()
        if last_reply is not None:
            return last_reply
        return forward_error_reply(query, SERVFAIL)

    def _outcome(self, task: asyncio.Task[bytes], attempt: _Try, now: float) -> bytes | None:
        """The reply of a finished try, or None after recording and logging its failure."""
        try:
            reply = task.result()
        except UpstreamError as exc:
            if not attempt.failure_recorded:
                self.health.record_failure(attempt.upstream, now)
                self.stats.fail(attempt.key)
            self._throttle.warn(("upstream", health_key(attempt.upstream)), now, "forward: %s", exc)
            return None
        except Exception as exc:  # a bug must cost one try, not the client's answer
            self._throttle.warn(
                ("bug", health_key(attempt.upstream)),
                now,
                "forward: unexpected error asking %s: %r",
                attempt.upstream,
                exc,
                exc_info=exc,
            )
            return None
        self.health.record_success(attempt.upstream, now)
        self.stats.answer(attempt.key, reply, now - attempt.started)
        answered_by.set(upstream_labels(attempt.key)[0])
        return reply


def _open_socket(
    sock_factory_for: Callable[[UpstreamLike], SockFactory],
    upstream: UpstreamLike,
    family: int,
    kind: int,
) -> socket.socket:
    return sock_factory_for(upstream)(family, kind)
