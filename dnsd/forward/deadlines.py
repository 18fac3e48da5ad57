"""Callbacks at absolute event-loop times, many of them behind one loop timer.

Every forwarded query needs a wake-up (its next server's turn, its 5 s deadline) and nearly all
of them are cancelled because the answer came first. A loop timer each (`call_at`) costs a
handle, a heap push and a cancel per query; here the loop holds one timer, for the earliest
entry, and a cancel drops the callback (the entry's time is skipped when it comes).

What is queued are plain numbers (a time and a sequence number; the callbacks are in a dict
by sequence number, while they are wanted): a cancelled entry waits for its time for seconds,
and numbers are nothing the garbage collector tracks. Holding objects there, at thousands of
queries a second, made the collector's full passes a fifth of the daemon's CPU (issue 13).
Times that come in order (every query's first wake-up is `now + slot`) go to a FIFO, others to
a heap.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Callable

Entry = int  # the sequence number `at` gave; `cancel` takes it

_INF = float("inf")


class Deadlines:
    """Not thread-safe: on the loop's thread only."""

    __slots__ = (
        "_callbacks",
        "_fifo",
        "_heap",
        "_last",
        "_loop",
        "_sequence",
        "_timer",
        "_timer_at",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._fifo: deque[tuple[float, int]] = deque()  # times never decrease along it
        self._last = -_INF  # the time of the FIFO's last entry
        self._heap: list[tuple[float, int]] = []  # the times that came out of order
        self._callbacks: dict[int, Callable[[float], None]] = {}
        self._sequence = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = _INF

    def __len__(self) -> int:
        """Callbacks waiting (cancelled ones are not counted)."""
        return len(self._callbacks)

    def at(self, when: float, callback: Callable[[float], None]) -> Entry:
        """Call `callback(now)` at `when` (loop time), `now` >= `when`; `cancel` the entry
        to skip it."""
        sequence = self._sequence = self._sequence + 1
        self._callbacks[sequence] = callback
        if when >= self._last:
            self._fifo.append((when, sequence))
            self._last = when
        else:
            heapq.heappush(self._heap, (when, sequence))
        if when < self._timer_at:
            self._arm(when)
        return sequence

    def cancel(self, entry: Entry) -> None:
        self._callbacks.pop(entry, None)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, _INF
        fifo, heap, callbacks = self._fifo, self._heap, self._callbacks
        now = self._loop.time()
        while True:
            if fifo and (not heap or fifo[0] <= heap[0]):
                if fifo[0][0] > now:
                    break
                when, sequence = fifo.popleft()
            elif heap and heap[0][0] <= now:
                when, sequence = heapq.heappop(heap)
            else:
                break
            callback = callbacks.pop(sequence, None)
            if callback is not None:
                callback(max(now, when))
        # Do not wake up for cancelled entries.
        while fifo and fifo[0][1] not in callbacks:
            fifo.popleft()
        while heap and heap[0][1] not in callbacks:
            heapq.heappop(heap)
        if not fifo:
            self._last = -_INF
        first = min(fifo[0][0] if fifo else _INF, heap[0][0] if heap else _INF)
        if first < _INF:
            self._arm(first)
