"""The composition root: store, engine, DNS follower and API server, and their lifecycle.

SIGTERM/SIGINT stop cleanly (listeners closed, state already saved, sandboxes keep their
network); SIGHUP re-reads the host's resolv.conf (which is also watched every second).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal

from netcore.engine import Engine, EngineConfig
from netcore.errors import NetcoreError
from netcore.kernel.linux import LinuxKernel
from netcore.overlay import OverlayProgrammer
from netcore.registry import Registry
from netcore.store import SharedStore, open_store

from . import __version__
from .api.app import claim_socket_path, create_app, start_tcp, start_unix
from .config import DaemonConfig
from .events.bus import EventBus
from .follower import Follower
from .forward.forwarder import Forwarder
from .forward.health import UpstreamHealth
from .health.monitor import HealthMonitor
from .hostdns.service import HostDns, HostDnsConfig
from .metrics.collector import build_registry
from .metrics.counters import ApiStats, StatsBook
from .metrics.exposition import metrics_app
from .metrics.querylog import QueryLog
from .sandbox_files.host import host_file_stamp
from .sdnotify import notify
from .statedir import StateDirLock, remove_store, store_exists
from .status import DaemonStatus
from .stopping import LINGER_S, STOP_DEADLINE_S, exit_after

log = logging.getLogger("dnsd")

HOST_WATCH_INTERVAL_S = 1.0
# Young collections every 10,000 net allocations instead of 700: a forwarded query's objects
# live a few milliseconds, and with 700 many outlived two young passes at 10k queries/s and
# were promoted, so full passes over the whole heap ran twice a second (issue 13: 5-15% of
# the daemon's CPU forwarding new names). Cycles are still collected, a little later.
GC_THRESHOLDS = (10_000, 10, 10)


def run(config: DaemonConfig) -> int:
    """Run the daemon until SIGTERM/SIGINT; the exit code for the command line."""
    gc.set_threshold(*GC_THRESHOLDS)
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pyroute2").setLevel(logging.WARNING)  # per-message debug otherwise
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        return runner(serve(config, bounded_stop=True))
    except NetcoreError as exc:
        log.error("dnsd: %s", exc)
        return 1


async def serve(
    config: DaemonConfig, ready: asyncio.Event | None = None, *, bounded_stop: bool = False
) -> int:
    """Serve until SIGTERM/SIGINT. `bounded_stop` (the `dnsd serve` process only): exit
    within `stopping.STOP_DEADLINE_S` of the signal even if a thread hangs."""
    # One daemon per state directory; a second one on the same socket stops here too, before
    # it touches the store or the kernel.
    lock = StateDirLock(config.state_dir)
    lock.acquire()
    try:
        claim_socket_path(config.api_socket)
        return await _serve(
            config, ready, fresh=not store_exists(config.state_dir), bounded_stop=bounded_stop
        )
    finally:
        lock.release()


async def _serve(
    config: DaemonConfig, ready: asyncio.Event | None, fresh: bool, bounded_stop: bool
) -> int:
    loop = asyncio.get_running_loop()
    host_config = HostDnsConfig.from_daemon(config)  # bad --host-dns: exit 1 before any work
    store = await asyncio.to_thread(open_store, config.store_url, config.cluster)
    kernel = LinuxKernel()
    kernel.prepare_dns_redirects()  # the helpers start while the store loads
    registry = Registry(store)
    engine = Engine(
        registry,
        kernel,
        EngineConfig(
            state_dir=config.state_dir,
            etc_netns_dir=config.etc_netns_dir,
            default_network=config.default_network,
            advertise_addr=config.cluster.advertise_addr if config.clustered else None,
            host_id=getattr(store, "host_id", ""),
        ),
    )
    rate = (config.forward_rate, max(config.forward_rate, 1.0)) if config.forward_rate else None
    forwarder = Forwarder(
        UpstreamHealth(),
        deadline_s=config.forward_deadline_s,
        max_inflight=config.max_inflight,
        rate_limit=rate,
    )
    query_log = (
        QueryLog(config.query_log, int(config.query_log_max_mb * 1024 * 1024))
        if config.query_log
        else None
    )
    book = StatsBook(query_log) if config.metrics else None
    follower = Follower(loop, config, forwarder, kernel, stats_book=book)
    registry.subscribe(follower.on_snapshot)
    events = EventBus(loop)
    events.follow(registry.snapshot())
    registry.subscribe(events.on_snapshot)
    health = HealthMonitor(loop, follower.update_health, events.on_health)
    registry.subscribe(health.on_snapshot)
    engine.first_connect_hooks.append(follower.prepare_listener)
    engine.first_connect_failed_hooks.append(follower.abandon_listener)
    if isinstance(store, SharedStore):  # several hosts: overlays, and the others' changes
        registry.subscribe(OverlayProgrammer(kernel).on_snapshot)
        store.follow(registry.apply_remote)
    # The API answers (and /_ping says ready) only once the kernel and the listeners are back.
    try:
        await asyncio.to_thread(engine.start)
    except BaseException:
        store.close()
        if fresh:  # nothing was ever stored: leave no empty state.db behind
            remove_store(config.state_dir)
        raise
    await asyncio.to_thread(follower.on_snapshot, registry.snapshot(), force=True)
    await asyncio.to_thread(follower.clear_stale_redirects)
    host_dns = await _start_host_dns(host_config, registry) if host_config.enabled else None
    health.apply(registry.snapshot())
    if query_log is not None:
        query_log.sandbox_name = follower.sandbox_name
        query_log.start()
    status = DaemonStatus(config, engine, follower, forwarder, query_log, health, host_dns)
    api_stats = ApiStats()
    metrics = (
        build_registry(status.sources(book, api_stats, __version__)) if book is not None else None
    )
    app_options = {
        "status": status,
        "metrics_registry": metrics,
        "api_stats": api_stats,
        "events": events,
        "health": health,
    }
    app = create_app(engine, version=__version__, **app_options)
    runners = [await start_unix(app, config.api_socket)]
    if config.api_tcp:
        host, _, port = config.api_tcp.rpartition(":")
        app = create_app(engine, token=config.api_token, version=__version__, **app_options)
        runners.append(await start_tcp(app, host.strip("[]") or "127.0.0.1", int(port)))
    if config.metrics_listen and metrics is not None:
        host, _, port = config.metrics_listen.rpartition(":")
        runners.append(await start_tcp(metrics_app(metrics), host.strip("[]"), int(port)))

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(
        signal.SIGHUP, lambda: loop.create_task(asyncio.to_thread(follower.reload_host))
    )
    tasks = [
        loop.create_task(_watch_host_file(config, follower)),
        loop.create_task(_reconcile_periodically(config, engine)),
    ]
    log.info(
        "dnsd %s serving: api %s, %d networks, %d sandboxes, %d dns listeners",
        __version__,
        config.api_socket,
        len(registry.networks),
        len(registry.sandboxes),
        len(follower.listeners),
    )
    if ready is not None:
        ready.set()
    notify(f"READY=1\nSTATUS=serving {len(follower.listeners)} sandboxes\nMAINPID={os.getpid()}")
    await stop.wait()
    log.info("dnsd stopping")
    if bounded_stop:
        exit_after(STOP_DEADLINE_S, 1, "dnsd did not stop")
    notify("STOPPING=1")
    for task in tasks:
        task.cancel()
    for runner in runners:
        await runner.cleanup()
    await health.close()
    await follower.close()
    forwarder.close()
    if host_dns is not None:
        await host_dns.close()
    if query_log is not None:
        await asyncio.to_thread(query_log.close)
    store.close()
    kernel.close()
    with contextlib.suppress(OSError):
        os.unlink(config.api_socket)
    if bounded_stop:  # stopped cleanly: a job still running in a thread is not waited for
        exit_after(LINGER_S, 0, "dnsd stopped, worker threads still busy")
    return 0


async def _start_host_dns(config: HostDnsConfig, registry: Registry) -> HostDns:
    """Names from the host: bound once the bridges are up (a gateway may be an address).
    Subscribed once serving, then brought up to date: no change is missed in between."""
    host_dns = HostDns(config)
    host_dns.bind()
    await host_dns.start()
    registry.subscribe(host_dns.on_snapshot)
    await asyncio.to_thread(host_dns.on_snapshot, registry.snapshot())
    return host_dns


async def _watch_host_file(config: DaemonConfig, follower: Follower) -> None:
    """A VPN coming up rewrites resolv.conf: running sandboxes follow without a restart."""
    stamp = host_file_stamp(config.host_resolv_conf)
    while True:
        await asyncio.sleep(HOST_WATCH_INTERVAL_S)
        now = host_file_stamp(config.host_resolv_conf)
        if now != stamp:
            stamp = now
            try:
                await asyncio.to_thread(follower.reload_host)
            except Exception:
                log.exception("reload host resolv.conf")


async def _reconcile_periodically(config: DaemonConfig, engine: Engine) -> None:
    """Bridges or veths deleted by hand, namespaces gone, a flushed ruleset: put back."""
    while True:
        await asyncio.sleep(config.reconcile_interval_s)
        try:
            await asyncio.to_thread(engine.reconcile)
        except Exception:
            log.exception("reconcile")
