"""What the running daemon reports about itself: `/info`'s `Dnsd` facts and the metrics' sources.

Called on the event loop's thread (from API handlers), like everything that mutates the
counters it reads.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

from netcore.engine import Engine

from .config import DaemonConfig
from .follower import Follower
from .forward.forwarder import Forwarder
from .health.client import ProbeWorker
from .health.monitor import HealthMonitor
from .hostdns.service import HostDns
from .metrics.collector import HealthFacts, Sources
from .metrics.counters import ApiStats, StatsBook, upstream_labels
from .metrics.querylog import QueryLog
from .serve.mmsg import ACCELERATED


@dataclass(frozen=True, slots=True)
class _Server:
    """The health-key view of an upstream (what `UpstreamHealth` needs)."""

    address: str
    port: int
    host_loopback: bool


def _server(key: tuple) -> _Server:
    return _Server(key[0], key[1], key[2] == "host")


class DaemonStatus:
    def __init__(
        self,
        config: DaemonConfig,
        engine: Engine,
        follower: Follower,
        forwarder: Forwarder,
        query_log: QueryLog | None,
        health: HealthMonitor | None = None,
        host_dns: HostDns | None = None,
    ) -> None:
        self.config = config
        self.health = health
        self.host_dns = host_dns
        self.engine = engine
        self.follower = follower
        self.forwarder = forwarder
        self.query_log = query_log
        self.started = time.monotonic()

    def upstream_keys(self) -> list[tuple]:
        """The host's upstreams and every server asked so far, as health keys."""
        from .forward.health import health_key

        keys = [health_key(u) for u in self.follower.files.host.upstreams]
        return [*keys, *(k for k in self.forwarder.stats.asked if k not in keys)]

    def healthy(self, key: tuple) -> bool:
        now = asyncio.get_running_loop().time()
        return not self.forwarder.health.is_penalised(_server(key), now)

    def objects(self) -> dict[str, int]:
        snapshot = self.follower.snapshot
        return {
            "listeners": len(self.follower.listeners),
            "networks": len(snapshot.networks),
            "sandboxes": len(snapshot.sandboxes),
            "endpoints": len(snapshot.endpoints),
        }

    def health_facts(self) -> HealthFacts:
        monitor = self.health
        prober = None if monitor is None else monitor.prober
        return HealthFacts(
            fail_open=self.follower.view.fail_open,
            checks={} if monitor is None else monitor.counts(),
            results=0 if monitor is None else monitor.probes_run,
            worker_restarts=prober.restarts if isinstance(prober, ProbeWorker) else 0,
        )

    def __call__(self) -> dict[str, Any]:
        """dnsd's facts for `/info` (`Dnsd`)."""
        stats = self.forwarder.stats
        upstreams = []
        for key in self.upstream_keys():
            address, via = upstream_labels(key)
            upstreams.append(
                {
                    "Address": address,
                    "Via": via,
                    "Healthy": self.healthy(key),
                    "Queries": stats.asked.get(key, 0),
                    "Failures": stats.failures.get(key, 0),
                }
            )
        config = self.config
        return {
            "Pid": os.getpid(),
            "Store": config.store_url,
            "ApiSocket": config.api_socket,
            "Listeners": len(self.follower.listeners),
            "Upstreams": upstreams,
            "ReplyCacheEntries": self.follower.listeners.cached_replies(),
            "ForwardsInFlight": self.forwarder.inflight_total(),
            "UptimeSeconds": round(time.monotonic() - self.started, 1),
            "Metrics": config.metrics,
            "MetricsListen": config.metrics_listen,
            "QueryLog": config.query_log,
            "Health": self._health_info(),
            # The `--host-dns` listeners open now (with `gateways`: one per local network).
            "HostDns": [] if self.host_dns is None else [str(a) for a in self.host_dns.addresses],
            # Which UDP hot loop answers: "C" (the accelerator built at install) or "Python".
            "UdpLoop": "C" if ACCELERATED else "Python",
        }

    def _health_info(self) -> dict[str, Any]:
        facts = self.health_facts()
        prober = None if self.health is None else self.health.prober
        return {
            "Checks": dict(facts.checks),
            "FailOpenNames": facts.fail_open,
            "WorkerPid": prober.pid if isinstance(prober, ProbeWorker) else None,
            "WorkerRestarts": facts.worker_restarts,
        }

    def sources(self, book: StatsBook, api: ApiStats, version: str) -> Sources:
        """What the metrics collector reads."""
        return Sources(
            book=book,
            api=api,
            upstreams=self.forwarder.stats,
            upstream_keys=self.upstream_keys,
            upstream_healthy=self.healthy,
            inflight=self.forwarder.inflight_total,
            objects=self.objects,
            repairs=lambda: self.engine.repairs,
            query_log=self.query_log,
            version=version,
            health=self.health_facts,
        )
