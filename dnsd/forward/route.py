"""Where a sandbox's forwarded query goes and which namespace it leaves from.

The glue between the listeners and the `Forwarder`: the sandbox's own upstreams (else the
host's), sockets from the sandbox's namespace (else from the daemon's, for the host's loopback
resolvers), and SERVFAIL for a sandbox whose listener is gone.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Protocol

from netcore.model import Sandbox

from ..core.answer import Forward
from ..core.wire import SERVFAIL as RCODE_SERVFAIL
from ..core.wire import empty_reply
from ..sandbox_files.resolvconf import Upstream, sandbox_upstreams
from ..serve.listeners import SandboxListener, SocketPool
from .forwarder import Forwarder


class Listeners(Protocol):
    def get(self, sandbox_id: str) -> SandboxListener | None: ...


class ForwardRoute:
    """Forwards for every sandbox; `update` it with each registry snapshot and host reload."""

    def __init__(
        self,
        forwarder: Forwarder,
        listeners: Listeners,
        host_upstreams: tuple[Upstream, ...] = (),
    ) -> None:
        self.forwarder = forwarder
        self.listeners = listeners
        self._sandboxes: Mapping[str, Sandbox] = {}
        self._host_upstreams = host_upstreams

    def update(
        self, sandboxes: Mapping[str, Sandbox], host_upstreams: tuple[Upstream, ...]
    ) -> None:
        self._sandboxes = sandboxes
        self._host_upstreams = host_upstreams

    async def forward(
        self, packet: bytes, decision: Forward, sandbox_id: str, *, tcp: bool
    ) -> bytes:
        listener = self.listeners.get(sandbox_id)
        if listener is None:  # removed meanwhile: never forward from the daemon's namespace
            return empty_reply(decision.query, RCODE_SERVFAIL)
        sandbox = self._sandboxes.get(sandbox_id)
        own = sandbox.dns if sandbox is not None else ()
        upstreams = sandbox_upstreams(own, self._host_upstreams)  # the host's, unless it has own
        return await self.forwarder.forward(
            packet,
            decision.query,
            upstreams,
            tcp=tcp,
            sandbox_key=sandbox_id,
            sock_factory_for=socket_factory(listener.pool),
        )


def socket_factory(pool: SocketPool) -> Callable[[Upstream], Callable]:
    """Queries leave from the sandbox's namespace (source = its address, like Docker);
    the host's loopback resolvers (127.0.0.53) are dialled from the daemon's own."""

    def for_upstream(upstream: Upstream) -> Callable[[int, int], socket.socket]:
        return socket.socket if upstream.host_loopback else pool.take

    return for_upstream
