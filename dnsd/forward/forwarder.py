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

How (issue 13): `start` runs a query as a `race.Race`, a state machine driven by callbacks:
UDP tries share connected sockets (`udp_pool`), wake-ups share one timer (`deadlines`), so a
forwarded query costs no socket and no task of its own. `forward` awaits the same for callers
that want a coroutine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from netcore.errors import InvalidArgument

from ..core.wire import REFUSED, SERVFAIL, Query, forward_error_reply
from ..metrics.answered import answered_by
from ..metrics.counters import UpstreamStats
from .client import SockFactory
from .deadlines import Deadlines
from .health import UpstreamHealth, UpstreamLike
from .race import MAX_UPSTREAMS, MIN_TRY_S, Done, Race, needs_next_server, try_slot
from .udp_pool import UdpPools

log = logging.getLogger(__name__)

DEFAULT_DEADLINE_S = 5.0  # whole forward; stub resolvers (glibc: 5 s) give up soon after
MAX_INFLIGHT = 1024  # per sandbox, as moby's semaphore: one sandbox cannot exhaust the daemon
WARN_INTERVAL_S = 10.0  # one warning per reason and sandbox/server per interval

__all__ = ["MAX_UPSTREAMS", "MIN_TRY_S", "Forwarder", "needs_next_server", "try_slot"]


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
        self.pools = UdpPools()  # connected sockets to the upstreams, per namespace
        self._deadlines: Deadlines | None = None
        self._deadlines_loop: asyncio.AbstractEventLoop | None = None
        self.stats = UpstreamStats()  # read by the metrics collector

    def inflight_total(self) -> int:
        """Forwards of every sandbox currently waiting on upstreams."""
        return sum(self._inflight.values())

    def inflight(self, sandbox_key: str) -> int:
        """Forwards of this sandbox currently waiting on upstreams."""
        return self._inflight.get(sandbox_key, 0)

    def forget(self, sandbox_key: str) -> None:
        """Drop the rate-limit state and upstream sockets of a removed sandbox."""
        self._buckets.pop(sandbox_key, None)
        self.pools.forget(sandbox_key)

    def close(self) -> None:
        """Close every upstream socket (the daemon stops)."""
        self.pools.close()

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
        `start` as a coroutine (cancelling it stops asking)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[bytes, str | None]] = loop.create_future()

        def done(reply: bytes) -> None:
            if not future.done():  # `answered_by` is set while `done` runs: carry it over
                future.set_result((reply, answered_by.get()))

        race = self.start(
            packet, query, upstreams, tcp=tcp, sandbox_key=sandbox_key,
            sock_factory_for=sock_factory_for, done=done,
        )  # fmt: skip
        try:
            reply, upstream = await future
        except asyncio.CancelledError:
            if race is not None:
                race.cancel()
            raise
        answered_by.set(upstream)  # for the caller's query log, as if answered in this task
        return reply

    def start(
        self,
        packet: bytes,
        query: Query,
        upstreams: Sequence[UpstreamLike],
        *,
        tcp: bool,
        sandbox_key: str,
        sock_factory_for: Callable[[UpstreamLike], SockFactory],
        done: Done,
    ) -> Race | None:
        """Forward `packet`; `done(reply)` is called once with the reply to relay (maybe before
        this returns). On the event loop's thread.

        `query` is `core.wire.parse_query(packet)`, as the listener parsed it (the `Forward`
        decision's): upstream replies are matched against it, nothing is parsed again.
        `sock_factory_for(upstream)` gives the socket factory for that server: inside the
        sandbox's namespace, or the daemon's for `host_loopback` servers. Returns the running
        race (to `cancel`), or None when answered at once.
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
            done(forward_error_reply(query, SERVFAIL))
            return None
        if not self._admit(sandbox_key, now):
            done(forward_error_reply(query, REFUSED))
            return None
        self._inflight[sandbox_key] = self._inflight.get(sandbox_key, 0) + 1
        # First 3 as configured, then health order: a 4th server is never asked (row O09).
        candidates = self.health.order(upstreams[:MAX_UPSTREAMS], now)
        return Race(
            self, loop, packet, query, candidates, tcp=tcp, sandbox_key=sandbox_key,
            factory_for=sock_factory_for, done=done, now=now,
        )  # fmt: skip

    # --- for Race ---

    def finished(self, sandbox_key: str) -> None:
        remaining = self._inflight[sandbox_key] - 1
        if remaining:
            self._inflight[sandbox_key] = remaining
        else:
            del self._inflight[sandbox_key]

    def slot(self, remaining_s: float) -> float:
        return try_slot(self.deadline_s, remaining_s)

    def deadlines(self, loop: asyncio.AbstractEventLoop) -> Deadlines:
        if self._deadlines is None or self._deadlines_loop is not loop:
            self._deadlines, self._deadlines_loop = Deadlines(loop), loop
        return self._deadlines

    def warn(
        self, key: object, now: float, message: str, *args: object, exc_info: object = None
    ) -> None:
        self._throttle.warn(key, now, message, *args, exc_info=exc_info)

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
