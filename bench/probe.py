"""A raw DNS A query from inside a namespace: the readiness probe of servers and the
connect-to-resolvable poll. Hand-built packets, so a probe costs microseconds, not a dig process.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import socket
import struct
import time
from dataclasses import dataclass

from netcore.kernel import netns

from .lab import BenchError

QTYPE_A = 1
CLASS_IN = 1
_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")


def build_query(name: str, qid: int, qtype: int = QTYPE_A) -> bytes:
    """A recursion-desired query for `name` (no EDNS), like a stub resolver sends."""
    labels = [label for label in name.rstrip(".").split(".") if label]
    qname = b"".join(bytes([len(raw)]) + raw for raw in (lb.encode("ascii") for lb in labels))
    return _HEADER.pack(qid, 0x0100, 1, 0, 0, 0) + qname + b"\0" + struct.pack("!HH", qtype, 1)


@dataclass(frozen=True, slots=True)
class ProbeReply:
    qid: int
    rcode: int
    truncated: bool
    addresses: tuple[str, ...]  # the A records of the answer section


def _skip_name(data: bytes, offset: int) -> int:
    while True:
        if offset >= len(data):
            raise ValueError("name runs past the end of the message")
        length = data[offset]
        if length & 0xC0 == 0xC0:  # a compression pointer ends the name
            return offset + 2
        if length == 0:
            return offset + 1
        offset += 1 + length


def parse_reply(data: bytes) -> ProbeReply:
    """Id, rcode, TC and A addresses of a reply; ValueError for a malformed one."""
    if len(data) < _HEADER.size:
        raise ValueError(f"{len(data)} bytes is shorter than a DNS header")
    qid, flags, qdcount, ancount, _, _ = _HEADER.unpack_from(data)
    offset = _HEADER.size
    for _ in range(qdcount):
        offset = _skip_name(data, offset) + 4
    addresses = []
    for _ in range(ancount):
        offset = _skip_name(data, offset)
        if offset + _RR_FIXED.size > len(data):
            raise ValueError("answer record runs past the end of the message")
        rtype, rclass, _, rdlength = _RR_FIXED.unpack_from(data, offset)
        offset += _RR_FIXED.size
        if rtype == QTYPE_A and rclass == CLASS_IN and rdlength == 4:
            addresses.append(str(ipaddress.IPv4Address(data[offset : offset + 4])))
        offset += rdlength
    return ProbeReply(qid, flags & 0xF, bool(flags & 0x0200), tuple(addresses))


class Prober:
    """Asks one server from inside a namespace, like a stub resolver: a fresh socket (so a
    fresh source port) per query, opened by a thread that lives in the namespace.

    One long-lived socket would be wrong here: its first packet pins a conntrack entry (and
    with it the NAT decision of the nft redirect), so a query sent while the redirect pointed
    at a dead port would keep failing as long as the poll goes on.
    """

    def __init__(self, netns_path: str, server: str, port: int = 53, source: str = "") -> None:
        self.worker = netns.NamespaceWorker(netns_path)
        self.server = (server, port)
        self.source = source
        self.netns_path = netns_path

    def close(self) -> None:
        self.worker.close()

    def ask(self, name: str, timeout_s: float) -> ProbeReply | None:
        """One query; the reply with our id, or None (no answer in time, or unreachable)."""
        qid = secrets.randbelow(1 << 16)
        sock = self.worker.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if self.source:
                sock.bind((self.source, 0))
            sock.sendto(build_query(name, qid), self.server)
            deadline = time.monotonic() + timeout_s
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                data = sock.recv(4096)
                with contextlib.suppress(ValueError):
                    reply = parse_reply(data)
                    if reply.qid == qid:
                        return reply
        except OSError:  # timeout, or refused: nothing listens behind the redirect (yet)
            return None
        finally:
            sock.close()
        return None

    def wait_for_address(
        self, name: str, deadline_s: float, interval_s: float = 0.002
    ) -> tuple[float, int]:
        """Poll until `name` has an A record: (seconds waited, queries sent)."""
        started = time.perf_counter()
        sent = 0
        while True:
            attempt = time.perf_counter()
            sent += 1
            reply = self.ask(name, interval_s)
            if reply is not None and reply.rcode == 0 and reply.addresses:
                return time.perf_counter() - started, sent
            if time.perf_counter() - started > deadline_s:
                raise BenchError(
                    f"{name} did not resolve via {self.server[0]}:{self.server[1]} in "
                    f"{self.netns_path} within {deadline_s:.0f} s (last reply: {reply})"
                )
            # a refusal or a wrong answer comes back at once: space the attempts anyway
            time.sleep(max(0.0, interval_s - (time.perf_counter() - attempt)))


def resolve_once(netns_path: str, server: str, name: str, *, source: str = "") -> ProbeReply:
    """One query that must be answered within a second (a server's readiness check)."""
    prober = Prober(netns_path, server, source=source)
    try:
        reply = prober.ask(name, 1.0)
    finally:
        prober.close()
    if reply is None:
        raise BenchError(f"{server} in {netns_path} did not answer a query for {name}")
    return reply
