"""Forwarding of queries the embedded DNS server does not answer itself to upstream servers."""

from .client import (
    SockFactory,
    UpstreamBadReply,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    exchange,
)
from .forwarder import Forwarder, needs_next_server, try_slot
from .health import UpstreamHealth, UpstreamLike

__all__ = [
    "Forwarder",
    "SockFactory",
    "UpstreamBadReply",
    "UpstreamError",
    "UpstreamHealth",
    "UpstreamLike",
    "UpstreamTimeout",
    "UpstreamUnreachable",
    "exchange",
    "needs_next_server",
    "try_slot",
]
