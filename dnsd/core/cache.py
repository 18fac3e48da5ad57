"""Replies remembered per listener, for the answers that cannot differ between two queries.

A query's reply is a function of the query bytes after its id and of the zone view. When the
reply carries at most one answer record there is nothing to shuffle, so the same query bytes
get the same reply bytes apart from the id: remember them, keyed by `packet[2:]`, until the
view changes. Sandboxes ask the same few names over and over, so most queries are answered
with one slice and one dict lookup. Replies with several records are never cached: each one is
shuffled anew (Docker's Fisher-Yates per answer).
"""

from __future__ import annotations

from .view import ZoneView

# Per listener. When full, new replies are not remembered (the ones there stay): clearing would
# make a sandbox that cycles through more names than this miss every time.
MAX_ENTRIES = 16384
_ANCOUNT_OFFSET = 6
_TC = 0x02  # in the first flags byte


class ReplyCache:
    """Not thread-safe: one per listener, used on the event loop."""

    __slots__ = ("_entries", "_view")

    def __init__(self) -> None:
        self._entries: dict[bytes, bytes] = {}
        self._view: ZoneView | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, packet: bytes, view: ZoneView) -> bytes | None:
        """The remembered reply to `packet` under `view`, with the packet's id; or None."""
        body = self.entries(view).get(packet[2:])
        return None if body is None else packet[:2] + body

    def entries(self, view: ZoneView) -> dict[bytes, bytes]:
        """The remembered replies under `view` (read-only for the caller), keyed by the query
        after its id, valued by the reply after its id: what the hot loop looks up itself."""
        if view is not self._view:  # a registry change: everything may answer differently
            self._entries = {}
            self._view = view
        return self._entries

    def put(self, packet: bytes, reply: bytes, view: ZoneView) -> None:
        """Remember `reply` to `packet` when it cannot vary: at most one answer record, and not
        truncated (a truncated answer keeps a random subset of the shuffled records)."""
        if reply[_ANCOUNT_OFFSET] or reply[_ANCOUNT_OFFSET + 1] > 1 or reply[2] & _TC:
            return
        entries = self.entries(view)
        if len(entries) < MAX_ENTRIES:
            entries[packet[2:]] = reply[2:]
