"""The daemon's configuration: merged once at the edge (command line), then frozen."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from netcore.store.etcd import ClusterOptions

DEFAULT_STATE_DIR = "/var/lib/dnsd"
DEFAULT_API_SOCKET = "/run/dnsd/dnsd.sock"
FORWARD_DEADLINE_S = 5.0  # a client always gets an answer (SERVFAIL at worst) within this
MAX_INFLIGHT_FORWARDS = 1024  # per sandbox; REFUSED past it (moby's limit)
QUERY_LOG_MAX_MB = 100.0  # the log file is rotated to PATH.1 before it passes this
RECONCILE_INTERVAL_S = 10.0
CACHE_SIZE = 10_000  # forwarded answers remembered (entries, LRU); 0: no cache
CACHE_MAX_TTL = 300
CACHE_MAX_NEGATIVE_TTL = 60


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    state_dir: str = DEFAULT_STATE_DIR
    api_socket: str = DEFAULT_API_SOCKET
    api_tcp: str | None = None  # HOST:PORT; requires api_token
    api_token: str | None = None
    upstreams: tuple[str, ...] = ()  # empty: the host's resolv.conf
    host_resolv_conf: str = "/etc/resolv.conf"
    log_level: str = "info"
    default_network: bool = True
    etc_netns_dir: str = "/etc/netns"
    forward_deadline_s: float = FORWARD_DEADLINE_S
    max_inflight: int = MAX_INFLIGHT_FORWARDS
    forward_rate: float | None = None  # forwarded queries/s per sandbox; None: unlimited
    reconcile_interval_s: float = RECONCILE_INTERVAL_S
    metrics: bool = True  # False (--no-metrics): count nothing, for benchmarks
    metrics_listen: str | None = None  # HOST:PORT of a /metrics listener without token
    query_log: str | None = None  # PATH, or "-" for stdout
    query_log_max_mb: float = QUERY_LOG_MAX_MB
    cache_size: int = CACHE_SIZE
    cache_max_ttl: int = CACHE_MAX_TTL
    cache_max_negative_ttl: int = CACHE_MAX_NEGATIVE_TTL
    cache_stale_s: float = 0.0  # serve-stale window (RFC 8767); 0: off
    # Names from the host (dnsd.hostdns): raw flag values, checked when the daemon starts.
    host_dns: tuple[str, ...] = ()  # ADDR[:PORT] listeners in the daemon's namespace
    host_dns_domain: str | None = None
    host_hosts_file: str | None = None
    store: str | None = None  # None: SQLite in the state directory
    cluster: ClusterOptions = field(default_factory=ClusterOptions)

    @property
    def store_url(self) -> str:
        if self.store is not None:
            return self.store
        return "sqlite://" + os.path.join(os.path.abspath(self.state_dir), "state.db")

    @property
    def clustered(self) -> bool:
        return self.store_url.startswith("etcd://")
