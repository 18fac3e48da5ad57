"""What the socket adapters need from the service behind them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..core.answer import Forward
from ..core.view import ZoneView

if TYPE_CHECKING:
    from ..forward.hits import HitTable


class QueryHandler(Protocol):
    @property
    def view(self) -> ZoneView:
        """The current zone view (swapped atomically on every registry change)."""
        ...

    def cached(self, decision: Forward, sandbox_id: str, packet: bytes = b"") -> bytes | None:
        """The forward cache's answer for a UDP query, or None (then `forward` it); given the
        `packet`, a hit is remembered in the listener's `hit_table`."""
        ...

    def hit_table(self, sandbox_id: str, view: ZoneView) -> HitTable | None:
        """The forward cache's hits of a listener by query bytes (`forward.hits`), or None."""
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
