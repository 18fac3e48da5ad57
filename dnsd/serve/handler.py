"""What the socket adapters need from the service behind them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..core.answer import Forward
from ..core.view import ZoneView


class QueryHandler(Protocol):
    @property
    def view(self) -> ZoneView:
        """The current zone view (swapped atomically on every registry change)."""
        ...

    def cached(self, decision: Forward, sandbox_id: str) -> bytes | None:
        """The forward cache's answer for a UDP query, or None (then `forward` it)."""
        ...

    async def forward(
        self, packet: bytes, decision: Forward, sandbox_id: str, *, tcp: bool
    ) -> bytes:
        """The reply bytes for a query the view does not answer (never raises)."""
        ...

    def forward_soon(
        self,
        packet: bytes,
        decision: Forward,
        sandbox_id: str,
        *,
        tcp: bool,
        reply_to: Callable[[bytes], None],
    ) -> None:
        """`forward` without a task: `reply_to(reply)` is called with the reply (maybe at
        once). On the event loop's thread."""
        ...
