"""Forwarding of queries the embedded DNS server does not answer itself to upstream servers."""

from .client import (
    Question,
    SockFactory,
    UpstreamBadReply,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    exchange,
    is_answer_to,
    parse_question,
)
from .forwarder import Forwarder, error_reply, needs_next_server, try_slot
from .health import UpstreamHealth, UpstreamLike

__all__ = [
    "Forwarder",
    "Question",
    "SockFactory",
    "UpstreamBadReply",
    "UpstreamError",
    "UpstreamHealth",
    "UpstreamLike",
    "UpstreamTimeout",
    "UpstreamUnreachable",
    "error_reply",
    "exchange",
    "is_answer_to",
    "needs_next_server",
    "parse_question",
    "try_slot",
]
