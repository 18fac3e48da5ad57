"""The event bus: a ring of recent events for `since` replays, and one bounded queue per
watcher. Publishing never blocks: a watcher whose queue is full is cut off (it gets a final
error line), so a slow consumer cannot hold the daemon back.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable

from netcore.model import Sandbox, Snapshot

from .messages import Event, health_event, snapshot_events

RING_SIZE = 4096  # at least the last 1,000 events can be replayed
QUEUE_SIZE = 1024  # per watcher


class Watcher:
    """One consumer: the replayed events, then live ones from `queue`; `dropped` when cut."""

    def __init__(self, replay: list[Event], last_seq: int, size: int) -> None:
        self.replay = replay
        self.last_seq = last_seq
        self.queue: asyncio.Queue[Event] = asyncio.Queue(size)
        self.dropped = False  # cut off: what is queued is its last


class EventBus:
    """Thread: `publish`/`on_snapshot` from any; `watch`/`unwatch` on the loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        ring_size: int = RING_SIZE,
        queue_size: int = QUEUE_SIZE,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.loop = loop
        self._ring: deque[tuple[int, Event]] = deque(maxlen=ring_size)
        self._queue_size = queue_size
        self._clock = clock
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._watchers: set[Watcher] = set()
        self._snapshot: Snapshot | None = None
        self.dropped_watchers = 0

    # --- producers ---

    def follow(self, snapshot: Snapshot) -> None:
        """The registry's state the next snapshot is compared with (at start-up: no events)."""
        self._snapshot = snapshot

    def on_snapshot(self, snapshot: Snapshot) -> None:
        """A registry listener: the events between the last snapshot and this one."""
        with self._lock:
            old = self._snapshot
            if old is not None and snapshot.revision <= old.revision:
                return
            self._snapshot = snapshot
        if old is not None:
            for event in snapshot_events(old, snapshot, self._clock()):
                self.publish(event)

    def on_health(self, sandbox: Sandbox, status: str) -> None:
        self.publish(health_event(sandbox, status, self._clock()))

    def publish(self, event: Event) -> None:
        with self._lock:
            seq = next(self._seq)
            self._ring.append((seq, event))
        self.loop.call_soon_threadsafe(self._deliver, seq, event)

    def _deliver(self, seq: int, event: Event) -> None:
        for watcher in list(self._watchers):
            if seq <= watcher.last_seq:
                continue  # already in its replay
            try:
                watcher.queue.put_nowait(event)
            except asyncio.QueueFull:
                watcher.dropped = True
                self._watchers.discard(watcher)
                self.dropped_watchers += 1

    # --- consumers (on the loop) ---

    def watch(self, since_ns: int | None) -> Watcher:
        """A watcher fed every event from now on, after a replay of the ring's events at or
        after `since_ns` (none when None)."""
        with self._lock:
            last = self._ring[-1][0] if self._ring else 0
            replay = (
                [] if since_ns is None else [e for _, e in self._ring if e["timeNano"] >= since_ns]
            )
            watcher = Watcher(replay, last, self._queue_size)
        self._watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def recent(self) -> list[Event]:
        with self._lock:
            return [event for _, event in self._ring]
