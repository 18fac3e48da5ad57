"""The probe scheduler: one asyncio task per check, each probing every Interval.

It runs in the probe worker process (dnsd.health.worker), never in the daemon: a thousand
probes a second make sockets, futures, tasks and subprocess transports whose collection paused
the daemon's loop for tens of milliseconds (bench/health_load). It knows nothing of health
states: each result goes to `report` with the check's key, and the daemon's monitor advances
the state machine. The unit tests run it in-process with a scripted probe.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

from netcore.healthcheck import Healthcheck

from .probes import Target, run_probe
from .state import Result

log = logging.getLogger(__name__)

Probe = Callable[[Healthcheck, Target], Awaitable[Result]]
Report = Callable[[int, Result], None]


class Scheduler:
    """Checks by key (the monitor's token for one sandbox's check); on one loop."""

    def __init__(
        self, report: Report, *, probe: Probe = run_probe, now: Callable[[], float] = time.time
    ) -> None:
        self._report = report
        self._probe = probe
        self._now = now
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._targets: dict[int, Target] = {}
        self._rng = random.Random()
        self.probes_run = 0

    def start(self, key: int, check: Healthcheck, target: Target) -> None:
        """Probe `target` with `check` from now on (a key already running starts over)."""
        self.stop(key)
        self._targets[key] = target
        task = asyncio.get_running_loop().create_task(self._run(key, check), name=f"check-{key}")
        self._tasks[key] = task

    def retarget(self, key: int, target: Target) -> None:
        """A new address or namespace, used from the next probe on."""
        if key in self._tasks:
            self._targets[key] = target

    def stop(self, key: int) -> None:
        task = self._tasks.pop(key, None)
        self._targets.pop(key, None)
        if task is not None:
            task.cancel()  # a probe in flight kills its processes (probes.run_command)

    def __len__(self) -> int:
        return len(self._tasks)

    async def _run(self, key: int, check: Healthcheck) -> None:
        interval = check.interval_s
        # The first probe after a random part of one interval: checks that start together
        # (a daemon restart) spread over the interval instead of firing at once.
        await asyncio.sleep(interval * (0.5 + 0.5 * self._rng.random()))
        while True:
            try:
                result = await self._probe(check, self._targets[key])
            except Exception as exc:  # a bug in a probe must not end the check
                log.exception("health probe %d", key)
                result = Result(self._now(), self._now(), -1, f"probe failed: {exc}")
            self.probes_run += 1
            self._report(key, result)
            await asyncio.sleep(interval)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for key in list(self._tasks):
            self.stop(key)
        await asyncio.gather(*tasks, return_exceptions=True)
