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

MAX_ENTRIES = 4096  # per listener; full: start over (sandboxes ask few distinct names)
_ANCOUNT_OFFSET = 6
_TC = 0x02  # in the first flags byte


class ReplyCache:
    """Not thread-safe: one per listener, used on the event loop."""

    __slots__ = ("_entries", "_view")

    def __init__(self) -> None:
        self._entries: dict[bytes, bytes] = {}
        self._view: ZoneView | None = None

    def get(self, packet: bytes, view: ZoneView) -> bytes | None:
        """The remembered reply to `packet` under `view`, with the packet's id; or None."""
        if view is not self._view:  # a registry change: everything may answer differently
            self._entries = {}
            self._view = view
            return None
        body = self._entries.get(packet[2:])
        if body is None:
            return None
        return packet[:2] + body

    def put(self, packet: bytes, reply: bytes, view: ZoneView) -> None:
        """Remember `reply` to `packet` when it cannot vary: at most one answer record, and not
        truncated (a truncated answer keeps a random subset of the shuffled records)."""
        if reply[_ANCOUNT_OFFSET] or reply[_ANCOUNT_OFFSET + 1] > 1 or reply[2] & _TC:
            return
        if view is not self._view:
            self._entries = {}
            self._view = view
        entries = self._entries
        if len(entries) >= MAX_ENTRIES:
            entries.clear()
        entries[packet[2:]] = reply[2:]
