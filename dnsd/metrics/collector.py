"""The Prometheus view of the daemon's plain counters, built when scraped.

`DnsdCollector.collect` runs on the event loop's thread (the /metrics handler calls it), where
every counter is mutated, so it reads them without locks. Only non-zero query kinds are
exported: the label sets stay as small as what actually happened.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from .counters import (
    LATENCY_BOUNDS,
    ApiStats,
    Histogram,
    StatsBook,
    UpstreamStats,
    upstream_labels,
)
from .outcome import DROPPED, N_OUTCOMES, OUTCOMES, split_kind
from .querylog import QueryLog

RCODE_LABELS = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
_REPAIR_KINDS = (  # (kind, pattern of engine.reconcile's lines), first match wins
    ("bridge", re.compile(r"^bridge ")),
    ("veth", re.compile(r"^veth ")),
    ("sandbox_vanished", re.compile(r"vanished")),
    ("firewall", re.compile(r"nft|firewall|ruleset", re.I)),
)


def repair_kind(line: str) -> str:
    """The kind of one reconcile repair line (an interrupted change settled, by default)."""
    for kind, pattern in _REPAIR_KINDS:
        if pattern.search(line):
            return kind
    return "interrupted_change"


@dataclass
class Sources:
    """What the collector reads; callables are asked at scrape time."""

    book: StatsBook
    api: ApiStats
    upstreams: UpstreamStats = field(default_factory=UpstreamStats)
    upstream_keys: Callable[[], Sequence[tuple]] = tuple  # configured servers, asked or not
    upstream_healthy: Callable[[tuple], bool] = lambda key: True
    inflight: Callable[[], int] = lambda: 0
    objects: Callable[[], Mapping[str, int]] = dict  # listeners, sandboxes, networks, endpoints
    repairs: Callable[[], Sequence[str]] = tuple
    query_log: QueryLog | None = None
    version: str = ""


def _counter(
    name: str, doc: str, labels: list[str], items: Iterable[tuple[Sequence[str], float]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for values, count in items:
        family.add_metric(list(values), count)
    return family


def _histogram(name: str, doc: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, labels=labels)


def _add_histogram(family: HistogramMetricFamily, labels: list[str], hist: Histogram) -> None:
    cumulative, buckets = 0, []
    for bound, count in zip((*LATENCY_BOUNDS, float("inf")), hist.buckets, strict=True):
        cumulative += count
        buckets.append((floatToGoString(bound), cumulative))
    family.add_metric(labels, buckets, hist.sum)


class DnsdCollector:
    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self._repairs_seen = 0
        self._repairs: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        yield from self._queries()
        yield from self._upstreams()
        yield from self._state()
        yield from self._api_and_log()

    def _queries(self) -> Iterator[Metric]:
        queries: dict[tuple[str, int], int] = {}
        latency = [Histogram() for _ in range(N_OUTCOMES)]
        hits: dict[str, int] = {}
        for stats in self.sources.book.all():
            network = stats.network or "none"
            for kind, count in enumerate(stats.counts):
                if count:
                    queries[network, kind] = queries.get((network, kind), 0) + count
            for total, mine in zip(latency, stats.latency, strict=True):
                total.absorb(mine)
            hits[network] = hits.get(network, 0) + stats.cache_hits
        family = CounterMetricFamily(
            "dnsd_dns_queries",
            "DNS queries received at 127.0.0.11, by network, query type and outcome",
            labels=["network", "qtype", "outcome"],
        )
        for (network, kind), count in sorted(queries.items()):
            family.add_metric([network, *split_kind(kind)], count)
        yield family
        family = _histogram(
            "dnsd_dns_answer_seconds",
            "Time from receiving a query to sending its answer, by outcome "
            "(local answers: the time of their batch)",
            ["outcome"],
        )
        for outcome, hist in enumerate(latency):
            if outcome != DROPPED:
                _add_histogram(family, [OUTCOMES[outcome]], hist)
        yield family
        yield _counter(
            "dnsd_dns_reply_cache_hits",
            "Queries answered from a listener's remembered replies, by network",
            ["network"],
            (([network], count) for network, count in sorted(hits.items())),
        )

    def _upstreams(self) -> Iterator[Metric]:
        src = self.sources
        stats = src.upstreams
        labels = ["upstream", "via"]
        yield _counter(
            "dnsd_upstream_queries",
            "Tries sent to upstream servers",
            labels,
            ((upstream_labels(key), count) for key, count in sorted(stats.asked.items())),
        )
        yield _counter(
            "dnsd_upstream_failures",
            "Tries without a usable reply (timeout, unreachable, bad reply)",
            labels,
            ((upstream_labels(key), count) for key, count in sorted(stats.failures.items())),
        )
        rcodes = CounterMetricFamily(
            "dnsd_upstream_responses",
            "Replies of upstream servers by rcode",
            labels=[*labels, "rcode"],
        )
        for (key, rcode), count in sorted(stats.rcodes.items()):
            name = RCODE_LABELS.get(rcode, f"RCODE{rcode}")
            rcodes.add_metric([*upstream_labels(key), name], count)
        yield rcodes
        latency = _histogram(
            "dnsd_upstream_latency_seconds", "Time until an upstream server replied", labels
        )
        for key, hist in sorted(stats.latency.items()):
            _add_histogram(latency, list(upstream_labels(key)), hist)
        yield latency
        healthy = GaugeMetricFamily(
            "dnsd_upstream_healthy",
            "1 unless the server failed recently (then it is asked last)",
            labels=labels,
        )
        keys = {*src.upstream_keys(), *stats.asked}
        for key in sorted(keys):
            up = 1.0 if src.upstream_healthy(key) else 0.0
            healthy.add_metric(list(upstream_labels(key)), up)
        yield healthy
        yield GaugeMetricFamily(
            "dnsd_forwards_inflight", "Forwarded queries waiting on upstreams", value=src.inflight()
        )
        yield _counter(
            "dnsd_forwards_refused",
            "Forwards answered REFUSED before any try: too many in flight, or over the rate",
            ["reason"],
            (([reason], count) for reason, count in sorted(stats.refused.items())),
        )

    def _state(self) -> Iterator[Metric]:
        src = self.sources
        for name, count in sorted(src.objects().items()):
            yield GaugeMetricFamily(f"dnsd_{name}", f"Current number of {name}", value=count)
        repairs = src.repairs()
        for line in repairs[self._repairs_seen :]:
            kind = repair_kind(line)
            self._repairs[kind] = self._repairs.get(kind, 0) + 1
        self._repairs_seen = len(repairs)
        yield _counter(
            "dnsd_reconcile_repairs",
            "Kernel state put back by reconciliation, by kind",
            ["kind"],
            (([kind], count) for kind, count in sorted(self._repairs.items())),
        )
        info = GaugeMetricFamily("dnsd_build", "The running dnsd", labels=["version"])
        info.add_metric([src.version], 1)
        yield info

    def _api_and_log(self) -> Iterator[Metric]:
        src = self.sources
        yield _counter(
            "dnsd_api_requests",
            "API requests by route, method and status",
            ["route", "method", "status"],
            (([r, m, str(st)], n) for (r, m, st), n in sorted(src.api.requests.items())),
        )
        qlog = src.query_log
        for name, doc, value in (
            ("lines", "Query log lines written", qlog.written if qlog else 0),
            ("dropped", "Queries not logged because the log's queue was full",
             qlog.dropped if qlog else 0),
            ("rotations", "Query log files rotated to PATH.1", qlog.rotations if qlog else 0),
        ):  # fmt: skip
            yield CounterMetricFamily(f"dnsd_query_log_{name}", doc, value=value)


def build_registry(sources: Sources) -> CollectorRegistry:
    """dnsd's collector with the process, platform and garbage collector metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DnsdCollector(sources))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
