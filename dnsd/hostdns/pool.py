"""The open host listeners, following the addresses wanted (`gateways.wanted_addresses`).

Static `--host-dns` addresses are bound once before anything serves, and a failure is fatal
(exit 1 naming the flag). Gateway listeners come and go with their networks: `reconcile` runs
on an engine thread (never the loop's), binds there, and starts serving on the event loop and
waits for it, so a network's gateway answers once the change that made it is published; a
closed listener's port is free when `reconcile` returns. A gateway that cannot be bound yet
is logged once and tried again on the next change.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Coroutine, Iterable

from netcore.errors import InvalidArgument

from ..serve.handler import QueryHandler
from .gateways import plan_listeners
from .listener import HostAddress, HostListener, bind_host_sockets

log = logging.getLogger(__name__)

ON_LOOP_TIMEOUT_S = 10.0


def local_links() -> frozenset[str]:
    """The names of this namespace's network interfaces."""
    return frozenset(name for _, name in socket.if_nameindex())


class HostListeners:
    """Address -> listener. The caller serialises every method; `addresses` may be read from
    any thread (a tuple replaced whole)."""

    def __init__(self, handler: QueryHandler, admit: Callable[[str], bool] | None = None) -> None:
        self.handler = handler
        self.admit = admit  # which client addresses may ask (None: all)
        self._open: dict[HostAddress, HostListener] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unbindable: set[HostAddress] = set()  # logged already; cleared once bound
        self._closed = False
        self.addresses: tuple[HostAddress, ...] = ()  # open now

    def bind_static(self, addresses: Iterable[HostAddress]) -> None:
        """Bind every static address, or none (InvalidArgument naming the flag)."""
        opened: list[tuple[HostAddress, tuple[socket.socket, socket.socket]]] = []
        try:
            for address in addresses:
                opened.append((address, bind_host_sockets(address)))
        except BaseException:
            for _, (udp, tcp) in opened:
                udp.close()
                tcp.close()
            raise
        for address, socks in opened:
            self._open[address] = HostListener(address, socks, self.handler, self.admit)
        self.addresses = tuple(self._open)

    async def start(self) -> None:
        """Serve the static listeners (on the loop); from here `reconcile` may open more."""
        self._loop = asyncio.get_running_loop()
        for listener in self._open.values():
            await listener.serve()
            log.info("host dns listening on %s (udp, tcp)", listener.address)

    def reconcile(self, wanted: Iterable[HostAddress]) -> None:
        """Close the listeners not wanted, open the wanted ones missing (an engine thread)."""
        if self._loop is None or self._closed:
            return
        wanted = tuple(wanted)
        plan = plan_listeners(self._open, wanted)
        for address in plan.close:
            self._stop(self._open.pop(address))
            log.info("host dns: closed %s (its network is gone)", address)
        for address in plan.open:
            self._open_one(address)
        self._unbindable.intersection_update(wanted)
        self.addresses = tuple(self._open)

    def close(self) -> None:
        """Close every listener (a thread other than the loop's); nothing opens after."""
        self._closed = True
        self.addresses = ()
        while self._open:
            _, listener = self._open.popitem()
            if self._loop is None:  # never served: nothing on the loop to stop
                listener.close()
            else:
                self._stop(listener)

    def _open_one(self, address: HostAddress) -> None:
        try:
            sockets = bind_host_sockets(address)
        except InvalidArgument as exc:
            if address not in self._unbindable:  # once, not on every change
                self._unbindable.add(address)
                log.warning("host dns: %s; tried again on the next change", exc)
            return
        self._unbindable.discard(address)
        listener = HostListener(address, sockets, self.handler, self.admit)
        try:
            self._on_loop(listener.serve())
        except Exception as exc:  # the loop is stopping: nothing serves any more
            log.warning("host dns: %s not served: %s", address, exc)
            self._stop(listener)
            return
        self._open[address] = listener
        log.info("host dns listening on %s (udp, tcp)", address)

    def _stop(self, listener: HostListener) -> None:
        """Stop serving on the loop and wait: the port is free when this returns."""
        try:
            self._on_loop(_close(listener))
        except Exception as exc:  # the loop is gone or stuck: at least give the port back
            log.debug("host dns: closing %s off the loop: %s", listener.address, exc)
            listener.udp.sock.close()
            listener.tcp.sock.close()

    def _on_loop(self, coro: Coroutine[object, object, None]) -> None:
        assert self._loop is not None
        if _running_loop() is self._loop:  # waiting here would block the loop it waits for
            coro.close()
            raise RuntimeError("host listeners are opened and closed off the event loop")
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(ON_LOOP_TIMEOUT_S)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _close(listener: HostListener) -> None:
    listener.close()
