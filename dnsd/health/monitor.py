"""The scheduler: one asyncio task per sandbox with a check, on the daemon's loop.

It follows the registry (any thread hands it snapshots), runs each probe every Interval, feeds
results to the state machine, and reports a change of status twice: to the DNS side (coalesced:
one view rebuild, on a worker thread, however many statuses changed meanwhile) and as a
`health_status` event. The DNS hot path never asks it anything.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from netcore.healthcheck import Healthcheck
from netcore.model import Endpoint, Sandbox, Snapshot

from .probes import Target, run_probe
from .state import STARTING, Health, Result, advance

log = logging.getLogger(__name__)

Probe = Callable[[Healthcheck, Target], Awaitable[Result]]
StatusChanged = Callable[[Sandbox, str], None]


@dataclass
class _Watch:
    sandbox: Sandbox
    check: Healthcheck
    started_at: float
    health: Health = field(default_factory=Health)
    task: asyncio.Task[None] | None = None


def targets(snapshot: Snapshot) -> dict[str, tuple[Sandbox, Target]]:
    """Every sandbox with an enabled check, and where its probes go: the namespace it lives in
    and its address on its default-route network (else its first)."""
    by_id = {s.id: s for s in snapshot.sandboxes}
    first: dict[str, Endpoint] = {}
    for endpoint in snapshot.endpoints:
        known = first.get(endpoint.sandbox_id)
        if known is None or _preference(endpoint) < _preference(known):
            first[endpoint.sandbox_id] = endpoint
    out: dict[str, tuple[Sandbox, Target]] = {}
    for sandbox in snapshot.sandboxes:
        if sandbox.healthcheck is None or sandbox.healthcheck.disabled:
            continue
        root = sandbox
        if sandbox.mode == "container":
            root = by_id.get(sandbox.joined_to or "", sandbox)
        endpoint = first.get(root.id)
        address = None if endpoint is None else str(endpoint.ipv4)
        if sandbox.mode == "host":
            address = "127.0.0.1"
        out[sandbox.id] = (sandbox, Target(root.netns_path, address))
    return out


def _preference(endpoint: Endpoint) -> tuple[bool, str]:
    return (not endpoint.is_gateway, endpoint.ifname)


class HealthMonitor:
    """Thread: `on_snapshot` from any; the rest on the loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_change: Callable[[Mapping[str, str]], None],
        on_status: StatusChanged = lambda sandbox, status: None,
        *,
        probe: Probe = run_probe,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.loop = loop
        self._on_change = on_change  # blocking (a view rebuild): run on a worker thread
        self._on_status = on_status
        self._probe = probe
        self._now = now
        self._watches: dict[str, _Watch] = {}
        self._targets: dict[str, Target] = {}
        self._dirty = False
        self._publisher: asyncio.Task[None] | None = None
        self._rng = random.Random()
        self.probes_run = 0

    # --- reading ---

    def health(self, sandbox_id: str) -> Health | None:
        watch = self._watches.get(sandbox_id)
        return None if watch is None else watch.health

    def statuses(self) -> dict[str, str]:
        return {sid: w.health.status for sid, w in self._watches.items()}

    def __len__(self) -> int:
        return len(self._watches)

    # --- following the registry ---

    def on_snapshot(self, snapshot: Snapshot) -> None:
        """A registry listener: thread-safe, returns at once."""
        self.loop.call_soon_threadsafe(self.apply, snapshot)

    def apply(self, snapshot: Snapshot) -> None:
        """Start, restart (a changed check starts over) and stop watches to match `snapshot`."""
        wanted = targets(snapshot)
        changed = False
        for sid in [s for s in self._watches if s not in wanted]:
            self._stop(sid)
            changed = True
        for sid, (sandbox, target) in wanted.items():
            watch = self._watches.get(sid)
            if watch is not None and watch.check == sandbox.healthcheck:
                watch.sandbox = sandbox
                self._targets[sid] = target  # a new address is used from the next probe on
                continue
            if watch is not None:
                self._stop(sid)
            self._targets[sid] = target
            assert sandbox.healthcheck is not None
            watch = _Watch(sandbox, sandbox.healthcheck, self._now())
            self._watches[sid] = watch
            watch.task = self.loop.create_task(self._run(watch), name=f"health-{sid[:12]}")
            changed = True
        if changed:
            self._changed()

    def _stop(self, sandbox_id: str) -> None:
        watch = self._watches.pop(sandbox_id)
        self._targets.pop(sandbox_id, None)
        if watch.task is not None:
            watch.task.cancel()  # a probe in flight kills its processes (probes.run_command)

    # --- running ---

    async def _run(self, watch: _Watch) -> None:
        interval = watch.check.interval_s
        # The first probe after a random part of one interval: checks that start together
        # (a daemon restart) spread over the interval instead of firing at once.
        await asyncio.sleep(interval * (0.5 + 0.5 * self._rng.random()))
        while True:
            sid = watch.sandbox.id
            try:
                result = await self._probe(watch.check, self._targets[sid])
            except Exception as exc:  # a bug in a probe must not end the watch
                log.exception("health probe of %s", watch.sandbox.name)
                result = Result(self._now(), self._now(), -1, f"probe failed: {exc}")
            self.probes_run += 1
            before = watch.health.status
            watch.health = advance(watch.health, result, watch.check, watch.started_at)
            if watch.health.status != before:
                log.info("health of %s: %s", watch.sandbox.name, watch.health.status)
                self._changed()
                self._on_status(watch.sandbox, watch.health.status)
            await asyncio.sleep(interval)

    def _changed(self) -> None:
        self._dirty = True
        if self._publisher is None or self._publisher.done():
            self._publisher = self.loop.create_task(self._publish())

    async def _publish(self) -> None:
        """Hand the statuses to the DNS side until no change is left unreported."""
        while self._dirty:
            self._dirty = False
            try:
                await asyncio.to_thread(self._on_change, self.statuses())
            except Exception:
                log.exception("rebuild answers after a health change")

    async def close(self) -> None:
        tasks = [w.task for w in self._watches.values() if w.task is not None]
        for sid in list(self._watches):
            self._stop(sid)
        if self._publisher is not None:
            tasks.append(self._publisher)
            self._publisher.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["STARTING", "HealthMonitor", "targets"]
