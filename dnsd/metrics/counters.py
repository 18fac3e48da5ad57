"""Plain counters the daemon adds to as it works; read (not locked) by the collector at scrape time.

Every counter here is mutated on the event loop's thread only, and the collector runs there too
(it is called by the /metrics handler), so a scrape sees a consistent picture without a lock.

`QueryStats.batch` is the one call the UDP loop makes per batch of datagrams, and it classifies
nothing: it adds the batch's cached replies to a per-latency-bucket tally (a C loop over the
batch, 30-40 ns a query) and keeps its fresh replies. `settle` (at scrape time, or when much is
pending) turns the tallies into counts by qtype and outcome: a listener's cache holds few
distinct replies, so that is a few dict lookups per scrape, not one per query. Within one
latency bucket every query of the local path took its batch's time, so a bucket's summed
seconds are shared among its outcomes by count.
"""

from __future__ import annotations

import functools
from bisect import bisect_left
from collections import _count_elements  # type: ignore[attr-defined]  # Counter's C loop
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from .outcome import (
    CACHED,
    DROPPED,
    FORWARDED,
    LOCAL,
    N_KINDS,
    N_OUTCOMES,
    OTHER_QTYPE,
    kind_of,
)

if TYPE_CHECKING:
    from netcore.model import Endpoint, Snapshot

    from .querylog import QueryLog

# Seconds. Local answers take tens of microseconds, forwards up to the 5 s deadline.
LATENCY_BOUNDS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
_MEMO_LIMIT = 4096  # remembered (reply -> kind) pairs per listener
SETTLE_AFTER = 1 << 16  # pending queries of one listener before they are settled anyway
# Whole replies kept until settled: classifying them costs the same now or at scrape time, so
# only a few are held (a listener holds KiBs, not MiBs, between scrapes).
HOLD_REPLIES = 256
_N_BUCKETS = len(LATENCY_BOUNDS) + 1


class Histogram:
    """Bucket counts (the last is +Inf) and a sum: what a Prometheus histogram needs."""

    __slots__ = ("buckets", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BOUNDS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float, n: int = 1) -> None:
        self.buckets[bisect_left(LATENCY_BOUNDS, seconds)] += n
        self.sum += seconds * n

    def absorb(self, other: Histogram) -> None:
        for i, count in enumerate(other.buckets):
            self.buckets[i] += count
        self.sum += other.sum


class QueryStats:
    """The queries of one sandbox's listener (UDP and TCP), by kind (qtype x outcome)."""

    __slots__ = (
        "_fresh",
        "_held",
        "_hits",
        "_kinds",
        "_pending",
        "_recalled",
        "_seconds",
        "cache_hits",
        "counts",
        "latency",
        "log",
        "network",
        "sandbox_id",
    )

    def __init__(self, sandbox_id: str, network: str = "", log: QueryLog | None = None) -> None:
        self.sandbox_id = sandbox_id
        self.network = network  # the label; kept up to date by StatsBook.follow
        self.log = log
        self.counts = [0] * N_KINDS
        self.latency = [Histogram() for _ in range(N_OUTCOMES)]
        self.cache_hits = 0
        self._kinds: dict[bytes, int] = {}
        # Not yet settled, per latency bucket: cached reply -> how often; fresh replies; seconds.
        self._hits: list[dict[bytes, int]] = [{} for _ in range(_N_BUCKETS)]
        self._fresh: list[list[bytes]] = [[] for _ in range(_N_BUCKETS)]
        self._recalled: list[dict[bytes, int]] = [{} for _ in range(_N_BUCKETS)]
        self._seconds = [0.0] * _N_BUCKETS
        self._pending = 0
        self._held = 0

    def batch(
        self,
        hits: Sequence[bytes],
        fresh: Sequence[bytes],
        dropped: int,
        seconds: float,
        recalled: Sequence[bytes] = (),
    ) -> None:
        """One batch answered in `seconds`: `hits` are reply-cache bodies (replies without their
        id), `fresh` whole local replies, `dropped` datagrams not answered, `recalled` bodies
        of forwarded replies from the forward cache (tallied like `hits`: the same entry gives
        the same body object for a second, so each is classified once, not parsed per reply)."""
        bucket = bisect_left(LATENCY_BOUNDS, seconds)
        for bodies, tallies in ((hits, self._hits), (recalled, self._recalled)):
            if len(bodies) > 4:
                _count_elements(tallies[bucket], bodies)
            elif bodies:  # the C loop's set-up costs more than a few lookups
                tally = tallies[bucket]
                for body in bodies:
                    tally[body] = tally.get(body, 0) + 1
        if fresh:
            self._fresh[bucket].extend(fresh)
        n = len(hits) + len(fresh) + len(recalled)
        self._seconds[bucket] += seconds * n
        if dropped:
            self.counts[OTHER_QTYPE * N_OUTCOMES + DROPPED] += dropped
        self._pending += n
        self._held += len(fresh)
        if self._pending > SETTLE_AFTER or self._held > HOLD_REPLIES:
            self.settle()
        if self.log is not None:
            self.log.offer_batch(self, hits, fresh, seconds)
            for body in recalled:
                self.log.offer(self, body, 0, CACHED, seconds, None)

    def settle(self) -> None:
        """Classify what `batch` tallied (thread: the loop's; the collector calls it)."""
        if not self._pending:
            return
        counts, kinds, latency = self.counts, self._kinds, self.latency
        for bucket in range(_N_BUCKETS):
            tally, fresh, recalled = self._hits[bucket], self._fresh[bucket], self._recalled[bucket]
            if not tally and not fresh and not recalled:
                continue
            seen = [0] * N_OUTCOMES
            for bodies, local in ((tally, True), (recalled, False)):
                for body, n in bodies.items():
                    kind = kinds.get(body)
                    if kind is None:
                        if len(kinds) >= _MEMO_LIMIT:
                            kinds.clear()
                        kind = kinds[body] = kind_of(body, 0, CACHED)
                    counts[kind] += n
                    seen[kind % N_OUTCOMES] += n
                    if local:
                        self.cache_hits += n
            for reply in fresh:
                kind = kind_of(reply, 2, LOCAL)
                counts[kind] += 1
                seen[kind % N_OUTCOMES] += 1
            mean = self._seconds[bucket] / max(sum(seen), 1)
            for outcome, n in enumerate(seen):
                if n:
                    latency[outcome].buckets[bucket] += n
                    latency[outcome].sum += mean * n
            self._hits[bucket] = {}
            self._fresh[bucket] = []
            self._recalled[bucket] = {}
            self._seconds[bucket] = 0.0
        self._pending = self._held = 0

    def forwarded(self, reply: bytes, seconds: float, upstream: str | None) -> None:
        """One forwarded query's `reply`, relayed after `seconds`."""
        kind = kind_of(reply, 2, FORWARDED)
        self.counts[kind] += 1
        self.latency[kind % N_OUTCOMES].observe(seconds)
        if self.log is not None:
            self.log.offer(self, reply, 2, FORWARDED, seconds, upstream)

    def absorb(self, other: QueryStats) -> None:
        other.settle()
        for i, count in enumerate(other.counts):
            self.counts[i] += count
        for mine, theirs in zip(self.latency, other.latency, strict=True):
            mine.absorb(theirs)
        self.cache_hits += other.cache_hits


class StatsBook:
    """Every listener's `QueryStats`, and the totals of stopped ones per network (counters
    never go down)."""

    def __init__(self, log: QueryLog | None = None) -> None:
        self.log = log
        self.live: set[QueryStats] = set()
        self.retired: dict[str, QueryStats] = {}
        self.network_of: dict[str, str] = {}  # sandbox id -> its primary network's name

    def open(self, sandbox_id: str) -> QueryStats:
        """Stats for a new listener (thread: any)."""
        stats = QueryStats(sandbox_id, self.network_of.get(sandbox_id, ""), self.log)
        self.live.add(stats)
        return stats

    def retire(self, stats: QueryStats) -> None:
        """A listener stopped: fold its counts into its network's total (thread: the loop)."""
        if stats in self.live:
            self.live.discard(stats)
            total = self.retired.get(stats.network)
            if total is None:
                total = self.retired[stats.network] = QueryStats("", stats.network)
            total.absorb(stats)

    def follow(self, network_of: dict[str, str]) -> None:
        """The registry changed: new network labels (sandbox id -> network name)."""
        self.network_of = network_of
        for stats in list(self.live):
            stats.network = network_of.get(stats.sandbox_id, stats.network)

    def update(self, network_of: Mapping[str, str | None]) -> None:
        """Some sandboxes changed: their new labels (None: no network any more)."""
        relabel = {}
        for sid, name in network_of.items():
            before = self.network_of.get(sid)
            if name is None:
                self.network_of.pop(sid, None)
            else:
                self.network_of[sid] = name
                if before is not None and before != name:
                    relabel[sid] = name
        if relabel:  # a listener already counting under another network (rare: no loop else)
            for stats in list(self.live):
                stats.network = relabel.get(stats.sandbox_id, stats.network)

    def all(self) -> Iterable[QueryStats]:
        """Live (settled now) and retired stats (thread: the loop)."""
        live = list(self.live)
        for stats in live:
            stats.settle()
        return [*live, *self.retired.values()]


class UpstreamStats:
    """Forwarded tries by upstream server, keyed by (address, port, where)."""

    __slots__ = ("asked", "failures", "latency", "rcodes", "refused")

    def __init__(self) -> None:
        self.asked: dict[tuple, int] = {}
        self.failures: dict[tuple, int] = {}
        self.rcodes: dict[tuple[tuple, int], int] = {}
        self.latency: dict[tuple, Histogram] = {}
        self.refused = {"inflight": 0, "rate": 0}  # forwards refused before any try

    def ask(self, key: tuple) -> None:
        self.asked[key] = self.asked.get(key, 0) + 1

    def answer(self, key: tuple, reply: bytes, seconds: float) -> None:
        rcode = reply[3] & 0x0F if len(reply) > 3 else -1
        self.rcodes[key, rcode] = self.rcodes.get((key, rcode), 0) + 1
        histogram = self.latency.get(key)
        if histogram is None:
            histogram = self.latency[key] = Histogram()
        histogram.observe(seconds)

    def fail(self, key: tuple) -> None:
        self.failures[key] = self.failures.get(key, 0) + 1


class ApiStats:
    """API requests by (route, method, status)."""

    __slots__ = ("requests",)

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}

    def count(self, route: str, method: str, status: int) -> None:
        key = (route, method, status)
        self.requests[key] = self.requests.get(key, 0) + 1


@functools.lru_cache(maxsize=1024)  # asked for every forwarded reply (the query log's field)
def upstream_labels(key: tuple) -> tuple[str, str]:
    """(upstream, via) label values of a health key (address, port, where)."""
    address, port, where = key
    host = f"[{address}]" if ":" in address else address
    return f"{host}:{port}", where


def primary_networks(snapshot: Snapshot) -> dict[str, str]:
    """Sandbox id -> the name of the network its queries are counted under: the one giving it
    its default route, else its first interface's."""
    names = {n.id: n.name for n in snapshot.networks}
    by_sandbox: dict[str, list[Endpoint]] = {}
    for ep in snapshot.endpoints:
        by_sandbox.setdefault(ep.sandbox_id, []).append(ep)
    return {sid: primary_network(eps, names) for sid, eps in by_sandbox.items()}


def primary_network(endpoints: Iterable[Endpoint], names: Mapping[str, str]) -> str:
    """`primary_networks` of one sandbox's (non-empty) endpoints; `names`: network id -> name."""
    return min((not ep.is_gateway, ep.ifname, names.get(ep.network_id, "")) for ep in endpoints)[2]
