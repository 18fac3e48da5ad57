"""`dnsd serve`: the daemon's configuration from its flags, then the daemon itself."""

from __future__ import annotations

import argparse
import ipaddress
import os
import re

from netcore.store.etcd import ClusterOptions

from ..config import DaemonConfig
from ..sandbox_files.resolvconf import parse_upstream
from .commands import UsageError, host_port


def _upstream(value: str) -> str:
    try:
        parse_upstream(value)
    except ValueError as exc:
        raise UsageError(f"--upstream {value!r}: {exc}") from None
    return value


def serve_config(args: argparse.Namespace) -> DaemonConfig:
    """The daemon's configuration from `dnsd serve` flags."""
    if args.api_tcp is not None:
        host_port(args.api_tcp, "--api-tcp")
        if not (args.api_token or os.environ.get("DNSD_API_TOKEN")):
            raise UsageError(
                "--api-tcp needs --api-token: a TCP listener without a token would let anyone "
                "who reaches the port change the host's networking"
            )
    if args.metrics_listen is not None:
        host_port(args.metrics_listen, "--metrics-listen")
    if args.no_metrics and (args.metrics_listen or args.query_log):
        raise UsageError("--no-metrics turns counting off: drop --metrics-listen and --query-log")
    return DaemonConfig(
        state_dir=args.state_dir,
        api_socket=args.api_socket,
        api_tcp=args.api_tcp,
        api_token=args.api_token or os.environ.get("DNSD_API_TOKEN"),
        upstreams=tuple(_upstream(u) for u in args.upstream),
        host_resolv_conf=args.host_resolv_conf,
        log_level=args.log_level,
        default_network=not args.no_default_network,
        etc_netns_dir=args.etc_netns_dir,
        forward_deadline_s=_positive(args.forward_deadline, "--forward-deadline"),
        max_inflight=int(_positive(args.max_inflight, "--max-inflight")),
        forward_rate=None
        if args.forward_rate is None
        else _positive(args.forward_rate, "--forward-rate"),
        reconcile_interval_s=_positive(args.reconcile_interval, "--reconcile-interval"),
        metrics=not args.no_metrics,
        metrics_listen=args.metrics_listen,
        query_log=args.query_log,
        query_log_max_mb=_positive(args.query_log_max_mb, "--query-log-max-mb"),
        cache_size=_at_least_zero(args.cache_size, "--cache-size"),
        cache_max_ttl=_at_least_zero(args.cache_max_ttl, "--cache-max-ttl"),
        cache_max_negative_ttl=_at_least_zero(
            args.cache_max_negative_ttl, "--cache-max-negative-ttl"
        ),
        cache_stale_s=duration(args.cache_stale, "--cache-stale"),
        host_dns=tuple(args.host_dns),
        host_dns_domain=args.host_dns_domain,
        host_hosts_file=args.host_hosts_file,
        store=_store_url(args.store),
        cluster=_cluster(args),
    )


def _store_url(value: str | None) -> str | None:
    if value is not None and value.partition("://")[0] not in ("sqlite", "memory", "etcd"):
        raise UsageError(
            f"--store {value!r}: use sqlite://PATH, memory:// or etcd://HOST:PORT[,...][/PREFIX]"
        )
    return value


def _cluster(args: argparse.Namespace) -> ClusterOptions:
    if args.host_ttl < 2:
        raise UsageError(f"--host-ttl must be at least 2 seconds, got {args.host_ttl}")
    if args.advertise_addr is not None:
        try:
            ipaddress.IPv4Address(args.advertise_addr)
        except ValueError:
            raise UsageError(
                f"--advertise-addr {args.advertise_addr!r}: give this host's IPv4 address on "
                "the underlay"
            ) from None
    return ClusterOptions(
        host_id=args.host_id or "",  # the store takes the hostname
        advertise_addr=args.advertise_addr,
        host_ttl_s=args.host_ttl,
        cacert=args.etcd_cacert,
        cert=args.etcd_cert,
        key=args.etcd_key,
        user=args.etcd_user,
        password=args.etcd_password or os.environ.get("DNSD_ETCD_PASSWORD"),
    )


def duration(value: str, flag: str) -> float:
    """Seconds from `90`, `90s`, `30m`, `1h`, `1d` or a sum of them (`1h30m`)."""
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd]?)", value.strip())
    if not value.strip() or "".join(n + u for n, u in parts) != value.strip():
        raise UsageError(f"{flag} {value!r}: give a duration such as 90s, 30m, 1h or 1d")
    units = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(number) * units[unit] for number, unit in parts)


def _at_least_zero(value: int, flag: str) -> int:
    if value < 0:
        raise UsageError(f"{flag} must be 0 or more, got {value}")
    return value


def _positive(value: float, flag: str) -> float:
    if not value > 0:
        raise UsageError(f"{flag} must be greater than 0, got {value}")
    return value


def cmd_serve(args: argparse.Namespace) -> int:
    config = serve_config(args)
    from ..daemon import run  # imported late: the client commands need none of it

    return run(config)
