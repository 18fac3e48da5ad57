"""Callbacks at absolute event-loop times, many of them behind one loop timer.

Every forwarded query needs a wake-up (its next server's turn, its 5 s deadline) and nearly all
of them are cancelled because the answer came first. A loop timer each (`call_at`) costs a
handle, a heap push and a cancel per query; here a cancel is a store (the entry is skipped when
its time comes) and the loop holds one timer, for the earliest entry.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

# [when, sequence, callback or None once cancelled]: a list, so that cancel is one store
Entry = list


class Deadlines:
    """Not thread-safe: on the loop's thread only."""

    __slots__ = ("_heap", "_loop", "_sequence", "_timer", "_timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[Entry] = []
        self._sequence = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, when: float, callback: Callable[[float], None]) -> Entry:
        """Call `callback(now)` at `when` (loop time), `now` >= `when`; `cancel` the entry
        to skip it."""
        entry = [when, next(self._sequence), callback]
        heapq.heappush(self._heap, entry)
        if when < self._timer_at:
            self._arm(when)
        return entry

    @staticmethod
    def cancel(entry: Entry) -> None:
        entry[2] = None

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        heap = self._heap
        now = self._loop.time()
        while heap and heap[0][0] <= now:
            when, _, callback = heapq.heappop(heap)
            if callback is not None:
                callback(max(now, when))
        while heap and heap[0][2] is None:  # do not wake up for cancelled entries
            heapq.heappop(heap)
        if heap:
            self._arm(heap[0][0])
