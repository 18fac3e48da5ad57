"""FakeUpstream: a scriptable DNS server (UDP + TCP on one port) for forwarding tests.

Serves a small zone with dnslib and misbehaves on request (`behaviour`, switchable while it
runs). It records every query it saw. Loopback by default; with `netns` (a path such as
/run/netns/x) its sockets are created inside that namespace by a short-lived thread that calls
setns(2), and then served on the running loop like any other socket.

The default zone mirrors the reference's `up1` (docker-dns.md): ext/mx/txt/bigtxt.anchors.test,
everything else NXDOMAIN without AA, TTL 300.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import struct
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from dnslib import AAAA, EDNS0, MX, QTYPE, RCODE, RR, SOA, TXT, A, DNSQuestion, DNSRecord

from dnsd.sandbox_files.resolvconf import Upstream

Zone = Mapping[str, Mapping[str, Sequence[object]]]  # name -> qtype name -> values

BIG_TXT = tuple(f"chunk{i}-" + "x" * 233 for i in range(6))  # 6 x 240 bytes: ~1.5 KB answer
REFERENCE_ZONE: Zone = {
    "ext.anchors.test": {"A": ["198.51.100.200"], "AAAA": ["2001:db8::200"]},
    "mx.anchors.test": {"MX": [(10, "mail.anchors.test")]},
    "mail.anchors.test": {"A": ["198.51.100.201"]},
    "txt.anchors.test": {"TXT": ["hello from the fake upstream"]},
    "bigtxt.anchors.test": {"TXT": list(BIG_TXT)},
}
_RDATA: dict[str, Callable[[object], object]] = {
    "A": A,
    "AAAA": AAAA,
    "TXT": TXT,
    "MX": lambda v: MX(v[1], v[0]),  # type: ignore[index]
}
KINDS = frozenset(
    {
        "normal",
        "nxdomain",  # every name, without AA
        "nxdomain_aa",  # every name, authoritative: final, no other server is asked
        "servfail",
        "refused",
        "silent",  # blackhole
        "slow",
        "truncate",  # UDP: TC set, no answers; TCP: normal
        "wrong_id",
        "wrong_question",
        "other_source",  # the right reply, sent from another socket
        "big",  # a ~1.5 KB TXT answer to any query, whole even over UDP
    }
)
T = TypeVar("T")
SPOOF_HEAD_START_S = 0.02  # the bad reply goes out this long before the right one


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How the fake answers. `then_answer`: after a wrong_id/wrong_question/other_source
    reply, also send the right answer (to test that the right one is still accepted)."""

    kind: str = "normal"
    delay: float = 0.0  # slow: seconds before answering
    then_answer: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown behaviour {self.kind!r}; one of {sorted(KINDS)}")


def slow(delay: float) -> Behaviour:
    return Behaviour("slow", delay=delay)


def spoof(kind: Literal["wrong_id", "wrong_question", "other_source"], *, then_answer: bool):
    return Behaviour(kind, then_answer=then_answer)


@dataclass(frozen=True, slots=True)
class SeenQuery:
    qname: str  # as received, without the trailing dot
    qtype: str
    transport: Literal["udp", "tcp"]
    source: tuple[str, int]
    edns_size: int | None
    data: bytes  # the exact bytes received


class FakeUpstream:
    """Async context manager; `address`/`port`/`upstream` are valid inside the block."""

    def __init__(
        self,
        zone: Zone = REFERENCE_ZONE,
        behaviour: Behaviour | str = "normal",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        netns: str | None = None,
        spoof_host: str | None = None,
        ttl: int = 300,
        negative_soa: tuple[int, int] | None = None,
    ) -> None:
        self.zone = {name.lower().rstrip("."): types for name, types in zone.items()}
        self.behaviour = behaviour  # type: ignore[assignment]  # via the property setter
        self.address = host
        self.port = port
        self.netns = netns
        self.spoof_host = spoof_host or host
        self.ttl = ttl
        # (SOA TTL, SOA minimum): NXDOMAIN and NODATA carry the zone's SOA (RFC 2308); None:
        # no SOA, as before (a negative answer a cache must not keep).
        self.negative_soa = negative_soa
        self.queries: list[SeenQuery] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._spoof_udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def behaviour(self) -> Behaviour:
        return self._behaviour

    @behaviour.setter
    def behaviour(self, value: Behaviour | str) -> None:
        self._behaviour = value if isinstance(value, Behaviour) else Behaviour(value)

    @property
    def upstream(self) -> Upstream:
        return Upstream(address=self.address, port=self.port)

    def qnames(self, transport: str | None = None) -> list[str]:
        return [q.qname for q in self.queries if transport in (None, q.transport)]

    async def __aenter__(self) -> FakeUpstream:
        if self.netns is None:
            udp, tcp, spoof_sock = _open_sockets(self.address, self.port, self.spoof_host)
        else:
            udp, tcp, spoof_sock = run_in_netns(
                self.netns, lambda: _open_sockets(self.address, self.port, self.spoof_host)
            )
        self.port = udp.getsockname()[1]
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=udp)
        self._spoof_udp, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, sock=spoof_sock
        )
        self._server = await asyncio.start_server(self._serve_tcp, sock=tcp)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        for transport in (self._udp, self._spoof_udp):
            if transport is not None:
                transport.close()
        if self._server is not None:
            await self._server.wait_closed()

    # --- answering ---

    def _reply(self, request: DNSRecord, transport: str) -> DNSRecord:
        kind = self._behaviour.kind
        if kind in ("nxdomain", "servfail", "refused"):
            reply = request.reply(aa=0)
            reply.header.rcode = getattr(RCODE, kind.upper())
        elif kind == "nxdomain_aa":
            reply = request.reply(aa=1)
            reply.header.rcode = RCODE.NXDOMAIN
        elif kind == "big":
            reply = request.reply()
            for chunk in BIG_TXT:
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(chunk), ttl=self.ttl))
        elif kind == "truncate" and transport == "udp":
            reply = request.reply()
            reply.header.tc = 1
        else:
            reply = self._from_zone(request)
        if request.ar and any(rr.rtype == QTYPE.OPT for rr in request.ar):
            reply.add_ar(EDNS0(udp_len=1232))
        return reply

    def _from_zone(self, request: DNSRecord) -> DNSRecord:
        name = str(request.q.qname).rstrip(".").lower()
        types = self.zone.get(name)
        if types is None:  # like dnsmasq for names it does not own: not authoritative
            reply = request.reply(aa=0)
            reply.header.rcode = RCODE.NXDOMAIN
            self._add_soa(reply)
            return reply
        reply = request.reply()
        qtype = QTYPE.get(request.q.qtype)
        for value in types.get(qtype, ()):
            rdata = _RDATA[qtype](value)
            reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=rdata, ttl=self.ttl))
        if not reply.rr:
            self._add_soa(reply)
        return reply

    def _add_soa(self, reply: DNSRecord) -> None:
        if self.negative_soa is not None:
            ttl, minimum = self.negative_soa
            rdata = SOA("ns.anchors.test", "admin.anchors.test", (1, 3600, 600, 86400, minimum))
            reply.add_auth(RR("anchors.test", QTYPE.SOA, rdata=rdata, ttl=ttl))

    def _respond(self, data: bytes, transport: str, source: tuple[str, int]) -> list[bytes]:
        """Record the query; the messages to send back, in order (empty: stay silent)."""
        try:
            request = DNSRecord.parse(data)
        except Exception:  # a fake that crashes on garbage would hide the real test
            return []
        opt = [rr for rr in request.ar if rr.rtype == QTYPE.OPT]
        self.queries.append(
            SeenQuery(
                str(request.q.qname).rstrip("."),
                QTYPE.get(request.q.qtype),
                transport,  # type: ignore[arg-type]
                (source[0], source[1]),
                opt[0].rclass if opt else None,
                data,
            )
        )
        kind = self._behaviour.kind
        if kind == "silent":
            return []
        good = self._reply(request, transport)
        if kind == "wrong_id":
            bad = DNSRecord.parse(good.pack())
            bad.header.id = (request.header.id + 1) & 0xFFFF
        elif kind == "wrong_question":
            bad = DNSRecord.parse(good.pack())
            bad.questions = [DNSQuestion("spoofed.invalid", request.q.qtype, request.q.qclass)]
        else:
            return [good.pack()]
        return [bad.pack(), good.pack()] if self._behaviour.then_answer else [bad.pack()]

    def _send_udp(self, data: bytes, source: tuple[str, int]) -> None:
        replies = self._respond(data, "udp", source)
        if not replies:
            return
        loop = asyncio.get_running_loop()
        if self._behaviour.kind == "other_source":
            assert self._spoof_udp is not None
            self._spoof_udp.sendto(replies[0], source)  # right bytes, wrong sender
            if not self._behaviour.then_answer:
                return
            loop.call_later(SPOOF_HEAD_START_S, self._sendto, replies[0], source)
            return
        delay = self._behaviour.delay if self._behaviour.kind == "slow" else 0.0
        first, *rest = replies
        loop.call_later(delay, self._sendto, first, source)
        for message in rest:
            loop.call_later(delay + SPOOF_HEAD_START_S, self._sendto, message, source)

    def _sendto(self, message: bytes, destination: tuple[str, int]) -> None:
        if self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(message, destination)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        self._writers.add(writer)
        source = writer.get_extra_info("peername")[:2]
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                data = await reader.readexactly(length)
                replies = self._respond(data, "tcp", source)
                if self._behaviour.kind == "slow":
                    await asyncio.sleep(self._behaviour.delay)
                for message in replies:
                    writer.write(struct.pack("!H", len(message)) + message)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # a cancelled handler must end normally: asyncio's stream callback chokes on it
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.fake._send_udp(data, addr)


def _open_sockets(
    host: str, port: int, spoof_host: str
) -> tuple[socket.socket, socket.socket, socket.socket]:
    """UDP and TCP bound to the same (host, port), plus a UDP socket for 'other source'."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(20):  # port 0: the UDP port may be taken for TCP; try another
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            udp.bind((host, port))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, udp.getsockname()[1]))
            tcp.listen(64)
        except OSError:
            udp.close()
            tcp.close()
            if port:
                raise
            continue
        spoof_sock = socket.socket(
            socket.AF_INET6 if ":" in spoof_host else socket.AF_INET, socket.SOCK_DGRAM
        )
        spoof_sock.bind((spoof_host, 0))
        for sock in (udp, tcp, spoof_sock):
            sock.setblocking(False)
        return udp, tcp, spoof_sock
    raise OSError(f"no free port on {host} for both UDP and TCP after 20 tries")


def run_in_netns(netns_path: str, create: Callable[[], T]) -> T:
    """Run `create` in a fresh thread that first joins the network namespace at `netns_path`.

    Only that thread changes namespace (setns is per thread) and it ends right after, so the
    loop's thread and the executor's threads never leave the daemon's namespace.
    """
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns_path}): {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(create())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"fake-upstream-netns:{netns_path}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]
