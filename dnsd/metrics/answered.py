"""Which upstream answered the forward running in this task (for the query log).

A context variable rather than a return value: the forwarder sets it where it accepts a reply,
the listener that awaited the forward reads it after, in the same task; nothing between them
has to carry it.
"""

from __future__ import annotations

from contextvars import ContextVar

answered_by: ContextVar[str | None] = ContextVar("dnsd_answered_by", default=None)
