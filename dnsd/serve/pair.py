"""The UDP and TCP servers of one listening address, started and stopped together.

Every listener is one: a sandbox's 127.0.0.11 (`listeners.SandboxListener`) and each
`--host-dns` address (`dnsd.hostdns.listener.HostListener`); `asker` is whose zone its
queries are answered from.
"""

from __future__ import annotations

import asyncio
import socket

from ..metrics.counters import QueryStats
from .handler import QueryHandler
from .tcp import TcpServer
from .udp import UdpServer


class ServerPair:
    def __init__(
        self,
        udp: socket.socket,
        tcp: socket.socket,
        asker: str,
        handler: QueryHandler,
        stats: QueryStats | None = None,
    ) -> None:
        self.stats = stats  # what UDP and TCP count into (None: metrics off)
        self.udp = UdpServer(udp, asker, handler, stats)
        self.tcp = TcpServer(tcp, asker, handler, stats=stats)

    async def serve(self) -> None:
        """Start both servers (on the event loop)."""
        self.udp.start(asyncio.get_running_loop())
        await self.tcp.start()

    def close(self) -> None:
        """Stop serving and close both sockets (on the event loop's thread); also for a pair
        that never served."""
        self.udp.close()
        self.tcp.close()
        self.tcp.sock.close()
