"""Which upstream to ask first: a server that just failed is asked last for a while.

Docker asks the servers in their configured order on every query, so a dead first server costs
every query its full timeout (4 s, rows O02/O03). We keep the configured order but move a server
that failed within the last `penalty_s` seconds to the end. Only transport failures count
(timeout, unreachable, unusable reply): a SERVFAIL/REFUSED/NXDOMAIN is an answer from a live
server, and reordering on it would change which rcode the client sees (rows O06/O08 depend on
the configured order).

Pure given `now`: the caller injects the clock (the event loop's `time()`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, Protocol

from netcore.errors import InvalidArgument

DEFAULT_PENALTY_S = 30.0  # long enough to skip a dead server for many queries, short to recover
_PRUNE_ABOVE = 1024  # entries; the map only grows with distinct servers, prune old ones past this

Where = Literal["host", "sandbox"]
HealthKey = tuple[str, int, Where]


class UpstreamLike(Protocol):
    """Structural view of `sandbox_files.resolvconf.Upstream` (address, port, host_loopback)."""

    @property
    def address(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def host_loopback(self) -> bool: ...


def health_key(upstream: UpstreamLike) -> HealthKey:
    """(address, port, where): the same address dialled from the daemon's namespace and from
    a sandbox's namespace may be two different servers (127.0.0.1 above all)."""
    where: Where = "host" if upstream.host_loopback else "sandbox"
    return (upstream.address, upstream.port, where)


class UpstreamHealth:
    """Recent transport failures of upstream servers, one instance per daemon."""

    __slots__ = ("_failed_at", "penalty_s")

    def __init__(self, penalty_s: float = DEFAULT_PENALTY_S) -> None:
        if penalty_s < 0:
            raise InvalidArgument(f"must be >= 0 seconds, got {penalty_s}", field="penalty_s")
        self.penalty_s = penalty_s
        self._failed_at: dict[HealthKey, float] = {}

    def record_failure(self, upstream: UpstreamLike, now: float) -> None:
        """The server did not answer usefully (timeout, unreachable, bad reply) at `now`."""
        self._failed_at[health_key(upstream)] = now
        if len(self._failed_at) > _PRUNE_ABOVE:
            self._prune(now)

    def record_success(self, upstream: UpstreamLike, now: float) -> None:
        """The server answered at `now`: it is healthy again, whatever it failed before."""
        if self._failed_at:  # nearly always empty: no key to build
            self._failed_at.pop(health_key(upstream), None)

    def is_penalised(self, upstream: UpstreamLike, now: float) -> bool:
        """True while the server's last failure is less than `penalty_s` old."""
        failed_at = self._failed_at.get(health_key(upstream))
        return failed_at is not None and now - failed_at < self.penalty_s

    def order(self, upstreams: Iterable[UpstreamLike], now: float) -> list[UpstreamLike]:
        """The upstreams in configured order, recently failed ones moved to the end.

        Among the failed ones the least recently failed comes first: it has had the longest
        time to recover. Both sorts are stable, so equal times keep the configured order.
        """
        if not self._failed_at:  # nothing failed lately: the configured order
            return list(upstreams)
        healthy: list[UpstreamLike] = []
        failed: list[tuple[float, UpstreamLike]] = []
        for upstream in upstreams:
            failed_at = self._failed_at.get(health_key(upstream))
            if failed_at is not None and now - failed_at < self.penalty_s:
                failed.append((failed_at, upstream))
            else:
                healthy.append(upstream)
        failed.sort(key=lambda pair: pair[0])
        return healthy + [upstream for _, upstream in failed]

    def _prune(self, now: float) -> None:
        expired = [k for k, t in self._failed_at.items() if now - t >= self.penalty_s]
        for key in expired:
            del self._failed_at[key]
