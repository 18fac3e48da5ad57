"""One DNS listener per sandbox namespace: sockets on 127.0.0.11 inside it, served here.

The sockets are opened on a helper thread that entered the namespace (the kernel's
`netns_worker`); the redirect of 127.0.0.11:53 to their random ports is an nft table inside
the namespace, so port 53 stays free for the sandbox's own processes (Docker does the same with
iptables).
"""

from __future__ import annotations

import fcntl
import logging
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from netcore.kernel.base import Kernel, NetnsWorker

from ..forward.client import SockFactory
from ..metrics.counters import QueryStats
from ..sandbox_files.resolvconf import Upstream
from .handler import QueryHandler
from .pair import ServerPair

log = logging.getLogger(__name__)

RESOLVER_ADDRESS = "127.0.0.11"
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
UDP_RCVBUF = 4 << 20  # bursts: with the default buffer every server lost 0.2-1.5% (issue 5)


@dataclass
class SandboxSockets:
    """Opened (blocking work, any thread); served after `serve()` on the loop."""

    netns_path: str
    udp: socket.socket
    tcp: socket.socket
    # A thread living in the namespace: opens forwarding sockets, runs nft there without
    # an nsenter exec (a child forked by this thread starts in the namespace).
    worker: NetnsWorker

    @property
    def ports(self) -> tuple[int, int]:
        return self.udp.getsockname()[1], self.tcp.getsockname()[1]

    def close(self) -> None:
        """Close both sockets and the worker (sockets that never served)."""
        self.udp.close()
        self.tcp.close()
        self.worker.close()


def preferred_port(sandbox_id: str) -> int:
    """The listener port of a sandbox, the same across daemon restarts: the redirect rule does
    not change, and a client whose conntrack entry points at the port keeps working."""
    return 20000 + int(sandbox_id[:8], 16) % 12000  # below the ephemeral range (32768-)


def open_sockets(
    kernel: Kernel, netns_path: str, port: int = 0, *, fresh: bool = False
) -> SandboxSockets:
    """Bind UDP and TCP on 127.0.0.11 inside the namespace (on `port` if it is free, else on
    a random one), and redirect 127.0.0.11:53 to them (`fresh`: see `render_dns_redirect`)."""
    sockets = bind_sockets(kernel, netns_path, port)
    try:
        kernel.apply_dns_redirect(sockets.worker, *sockets.ports, fresh=fresh)
    except BaseException:
        sockets.close()
        raise
    return sockets


def open_many(
    kernel: Kernel, wanted: Sequence[tuple[str, int]]
) -> list[SandboxSockets | Exception]:
    """`open_sockets` for each (namespace, port) of a batch (a restart): the sockets one by
    one, then every redirect in one `apply_dns_redirects`; the sockets or what failed."""
    opened: list[SandboxSockets | Exception] = []
    for netns_path, port in wanted:
        try:
            opened.append(bind_sockets(kernel, netns_path, port))
        except Exception as exc:
            opened.append(exc)
    ready = [(i, s) for i, s in enumerate(opened) if isinstance(s, SandboxSockets)]
    errors = kernel.apply_dns_redirects([(s.worker, *s.ports) for _, s in ready])
    for (i, sockets), error in zip(ready, errors, strict=True):
        if error is not None:
            sockets.close()
            opened[i] = error
    return opened


def bind_sockets(kernel: Kernel, netns_path: str, port: int = 0) -> SandboxSockets:
    """UDP and TCP bound on 127.0.0.11 inside the namespace (`port` if free, else any); no
    redirect yet."""

    def bind() -> tuple[socket.socket, socket.socket]:
        _ensure_loopback_up()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            for sock in (udp, tcp):
                try:
                    sock.bind((RESOLVER_ADDRESS, port))
                except OSError:  # taken by the sandbox's own process: any port will do
                    sock.bind((RESOLVER_ADDRESS, 0))
            tcp.listen(128)
        except BaseException:
            udp.close()
            tcp.close()
            raise
        return udp, tcp

    worker = kernel.netns_worker(netns_path)
    try:
        udp, tcp = worker.call(bind)
    except BaseException:
        worker.close()
        raise
    return SandboxSockets(netns_path, udp, tcp, worker)


def _ensure_loopback_up() -> None:
    """An adopted namespace may have `lo` down: then 127.0.0.11 still binds, but nothing
    reaches it. Bring it up (called on a thread inside the namespace)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack_from("16sH", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        if not flags & _IFF_UP:
            fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


class SocketPool:
    """Fresh UDP sockets inside one namespace, opened a handful at a time.

    Every forwarded query gets a socket of its own (a random source port: spoofed answers have
    to guess it); opening them in batches costs one worker round trip per `batch` queries.
    Stream sockets are opened one by one.
    """

    def __init__(self, worker: NetnsWorker, batch: int = 16) -> None:
        self.worker = worker
        self.batch = batch
        self._free: dict[int, list[socket.socket]] = {}

    def take(self, family: int, type_: int) -> socket.socket:
        if type_ != socket.SOCK_DGRAM:
            return self.worker.socket(family, type_)
        free = self._free.get(family)
        if not free:
            count = self.batch
            free = self._free[family] = self.worker.call(
                lambda: [socket.socket(family, socket.SOCK_DGRAM) for _ in range(count)]
            )
        return free.pop()

    def for_upstream(self, upstream: Upstream) -> SockFactory:
        """The socket factory for `upstream`: queries leave from the sandbox's namespace
        (source = its address, like Docker); the host's loopback resolvers (127.0.0.53) are
        dialled from the daemon's own."""
        return socket.socket if upstream.host_loopback else self.take

    def close(self) -> None:
        for free in self._free.values():
            for sock in free:
                sock.close()
        self._free.clear()


class SandboxListener(ServerPair):
    def __init__(
        self,
        sandbox_id: str,
        sockets: SandboxSockets,
        handler: QueryHandler,
        stats: QueryStats | None = None,
    ) -> None:
        super().__init__(sockets.udp, sockets.tcp, sandbox_id, handler, stats)
        self.sandbox_id = sandbox_id
        self.sockets = sockets
        # Forwarded queries leave from the sandbox's namespace: their sockets come from here.
        self.worker = sockets.worker
        self.pool = SocketPool(self.worker)

    def close(self) -> None:
        """Stop serving (on the event loop's thread)."""
        super().close()
        self.pool.close()

    def teardown(self, kernel: Kernel, *, remove_redirect: bool) -> None:
        """After `close`, on any thread: drop the redirect (the namespace stays) and the
        namespace's worker thread."""
        path = self.sockets.netns_path
        if remove_redirect and kernel.netns_exists(path):
            try:
                kernel.remove_dns_redirect(path, self.worker)
            except Exception as exc:  # best effort: the namespace may be going away
                log.debug("remove dns redirect in %s: %s", self.sockets.netns_path, exc)
        self.worker.close()
