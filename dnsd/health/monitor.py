"""The health monitor: the daemon's half of the checks, on its loop.

It follows the registry (any thread hands it snapshots), tells a prober which checks to run
where (by default the probe worker process, dnsd.health.client; the unit tests run the
scheduler in-process), feeds each result to the state machine, and reports a change of status
twice: to the DNS side (coalesced: one view rebuild, on a worker thread, however many statuses
changed meanwhile) and as a `health_status` event. The DNS hot path never asks it anything.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from netcore.healthcheck import Healthcheck
from netcore.model import Endpoint, Sandbox, Snapshot

from .client import ProbeWorker
from .probes import Target
from .scheduler import Report
from .state import STARTING, Health, Result, advance

log = logging.getLogger(__name__)

StatusChanged = Callable[[Sandbox, str], None]


class Prober(Protocol):
    """Runs checks, reports each result with its key (scheduler.Scheduler, client.ProbeWorker)."""

    def start(self, key: int, check: Healthcheck, target: Target) -> None: ...
    def retarget(self, key: int, target: Target) -> None: ...
    def stop(self, key: int) -> None: ...
    async def close(self) -> None: ...


@dataclass
class _Watch:
    sandbox: Sandbox
    check: Healthcheck
    target: Target
    key: int  # the prober's name for this check; a changed check gets a new one
    started_at: float
    health: Health = field(default_factory=Health)


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
    """Thread: `on_snapshot` from any; the rest on the loop (create it inside the loop)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_change: Callable[[Mapping[str, str]], None],
        on_status: StatusChanged = lambda sandbox, status: None,
        *,
        prober: Callable[[Report], Prober] = ProbeWorker,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.loop = loop
        self._on_change = on_change  # blocking (a view rebuild): run on a worker thread
        self._on_status = on_status
        self._now = now
        self._watches: dict[str, _Watch] = {}
        self._by_key: dict[int, _Watch] = {}
        self._keys = itertools.count(1)
        self._dirty = False
        self._publisher: asyncio.Task[None] | None = None
        self.probes_run = 0
        self.prober = prober(self._on_result)

    # --- reading ---

    def health(self, sandbox_id: str) -> Health | None:
        watch = self._watches.get(sandbox_id)
        return None if watch is None else watch.health

    def statuses(self) -> dict[str, str]:
        return {sid: w.health.status for sid, w in self._watches.items()}

    def counts(self) -> dict[str, int]:
        """Sandboxes with a check, by status."""
        return dict(Counter(w.health.status for w in self._watches.values()))

    def __len__(self) -> int:
        return len(self._watches)

    # --- following the registry ---

    def on_snapshot(self, snapshot: Snapshot) -> None:
        """A registry listener: thread-safe, returns at once."""
        self.loop.call_soon_threadsafe(self.apply, snapshot)

    def apply(self, snapshot: Snapshot) -> None:
        """Start, restart (a changed check starts over) and stop checks to match `snapshot`."""
        wanted = targets(snapshot)
        changed = False
        for sid in [s for s in self._watches if s not in wanted]:
            self._stop(sid)
            changed = True
        for sid, (sandbox, target) in wanted.items():
            watch = self._watches.get(sid)
            if watch is not None and watch.check == sandbox.healthcheck:
                watch.sandbox = sandbox
                if watch.target != target:  # used from the next probe on
                    watch.target = target
                    self.prober.retarget(watch.key, target)
                continue
            if watch is not None:
                self._stop(sid)
            assert sandbox.healthcheck is not None
            watch = _Watch(sandbox, sandbox.healthcheck, target, next(self._keys), self._now())
            self._watches[sid] = self._by_key[watch.key] = watch
            self.prober.start(watch.key, watch.check, target)
            changed = True
        if changed:
            self._changed()

    def _stop(self, sandbox_id: str) -> None:
        watch = self._watches.pop(sandbox_id)
        del self._by_key[watch.key]
        self.prober.stop(watch.key)

    # --- results ---

    def _on_result(self, key: int, result: Result) -> None:
        watch = self._by_key.get(key)
        if watch is None:
            return  # a result of a check stopped or changed meanwhile
        self.probes_run += 1
        before = watch.health.status
        watch.health = advance(watch.health, result, watch.check, watch.started_at)
        if watch.health.status != before:
            log.info("health of %s: %s", watch.sandbox.name, watch.health.status)
            self._changed()
            self._on_status(watch.sandbox, watch.health.status)

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
        for sid in list(self._watches):
            self._stop(sid)
        await self.prober.close()
        if self._publisher is not None:
            self._publisher.cancel()
            await asyncio.gather(self._publisher, return_exceptions=True)


__all__ = ["STARTING", "HealthMonitor", "Prober", "targets"]
