"""The DNS answer core: pure functions from a packet and a zone view to a decision.

No sockets, no clock, no asyncio: the server adapters move bytes, this decides them.
"""

from .answer import DROP, Decision, Drop, Forward, Reply, answer
from .view import SandboxZone, ZoneView, build_view
from .wire import MalformedQuery, Query, empty_reply, error_reply, parse_query

__all__ = [
    "DROP",
    "Decision",
    "Drop",
    "Forward",
    "MalformedQuery",
    "Query",
    "Reply",
    "SandboxZone",
    "ZoneView",
    "answer",
    "build_view",
    "empty_reply",
    "error_reply",
    "parse_query",
]
