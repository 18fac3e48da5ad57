"""The forward cache's hits of one listener, found from the query bytes alone.

A forwarded name that is cached costs the listener the answer core's parse and miss, then the
cache's key and lookup (~4.5 us). The same query bytes after the id (the same question in the
same case, the same flags and EDNS) always get the same cache entry, so the listener remembers,
like its local reply cache (`core.cache`), which entry answered which query bytes: one slice
and one dict lookup, then the entry's TTLs counted down as the cache would.

Nothing is answered that the cache would not answer itself: an entry that left the cache
(evicted, replaced, flushed) is marked dropped, an expired one falls through (serve-stale is
the cache's business), and the whole table is forgotten when the zone view changes (a name
may have become local) or the route's plans do (another upstream set, an opt-out).
"""

from __future__ import annotations

from collections.abc import Callable

from .cache import Entry, ForwardCache, render

MAX_ENTRIES = 4096  # per listener; when full it starts again (entries may be long dead)


class HitTable:
    """Not thread-safe: one per listener, on the event loop."""

    __slots__ = ("_cache", "_clock", "_entries", "_state")

    def __init__(self, cache: ForwardCache, clock: Callable[[], float]) -> None:
        self._cache = cache
        self._clock = clock
        self._entries: dict[bytes, Entry] = {}
        self._state: tuple[object, int] | None = None

    def valid_for(self, view: object, generation: int) -> HitTable:
        """This table, emptied when the view or the route's plans changed since last asked."""
        state = (view, generation)
        if self._state is None or self._state[0] is not view or self._state[1] != generation:
            self._entries = {}
            self._state = state
        return self

    def get(self, key: bytes) -> bytes | None:
        """The reply after its id for query bytes `key` (after their id), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self._clock()
        if now >= entry.expires:
            del self._entries[key]
            return None
        self._cache.touch(entry)
        age = int(now - entry.stored)
        return entry.body if entry.body_age == age else render(entry, age)

    def put(self, key: bytes, entry: Entry, question: bytes) -> None:
        """Remember that `entry` answered the query bytes `key`, when it answers them as they
        are: the question in the same case (else the cache re-cases each answer)."""
        if entry.reply[12 : 12 + len(question)] != question:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries = {}
        self._entries[key] = entry
