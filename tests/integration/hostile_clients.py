"""Hostile and measuring DNS clients for the reliability and security tests (issue 6).

Run inside a sandbox (`ip netns exec SANDBOX python3 hostile_clients.py KIND ...`); standard
library only, so it works with whatever the sandbox's mount namespace offers. Each command
prints one JSON object on stdout:

- `udp-storm`: random and mutated packets at 127.0.0.11, a real query every `--check-every`
  packets (answered within 3 tries of 1 s, as a stub resolver would ask).
- `tcp-attack`: hostile TCP connections (partial length prefixes, zero length, oversize,
  garbage, never-closing, slowloris, never-reading), held until the server closes them.
- `flood`: queries as fast as one socket sends them, for `--seconds`.
- `tcp-flood`: `--count` connections pipelining queries as fast as they are taken.
- `probe`: sequential queries for one name; latency of each (ms), losses.
- `burst`: `--count` queries sent at once, then every reply collected; rcode histogram.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import select
import socket
import struct
import sys
import time

RESOLVER = ("127.0.0.11", 53)
HEADER = struct.Struct("!HHHHHH")
TYPES = (1, 28, 12, 33, 15, 16, 255, 5, 6, 2, 251, 252, 0, 65535)


def query(qid: int, name: str, qtype: int = 1, *, edns: bool = False) -> bytes:
    """A standard query (RD set) for `name`."""
    packet = HEADER.pack(qid, 0x0100, 1, 0, 0, 1 if edns else 0)
    for label in name.rstrip(".").split("."):
        packet += bytes([len(label)]) + label.encode()
    packet += b"\0" + struct.pack("!HH", qtype, 1)
    if edns:
        packet += b"\0" + struct.pack("!HHIH", 41, 1232, 0, 0)
    return packet


def answers_with(reply: bytes, qid: int, address: str) -> bool:
    """NOERROR for our id, with `address` among the answer bytes."""
    if len(reply) < 12:
        return False
    rid, flags, _, ancount, _, _ = HEADER.unpack_from(reply)
    return rid == qid and flags & 0x000F == 0 and ancount > 0 and socket.inet_aton(address) in reply


def mutate(packet: bytes, rng: random.Random) -> bytes:
    """One of the ways a parser gets hurt: flips, truncation, counts, pointer loops, junk."""
    data = bytearray(packet)
    how = rng.randrange(10)
    if how == 0:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif how == 1:
        del data[rng.randrange(len(data)) :]
    elif how == 2:
        data += rng.randbytes(rng.randrange(1, 600))
    elif how == 3:  # absurd section counts
        struct.pack_into("!HHHH", data, 4, *(rng.choice((0, 1, 2, 255, 65535)) for _ in range(4)))
    elif how == 4:  # the name points at itself
        data[12:14] = b"\xc0\x0c"
    elif how == 5:  # label longer than 63 / than the packet
        data[12] = rng.choice((64, 127, 200, 255))
    elif how == 6:  # opcode, QR, Z, rcode bits
        data[2] = rng.randrange(256)
        data[3] = rng.randrange(256)
    elif how == 7:  # question type and class
        data[-4:] = rng.randbytes(4)
    elif how == 8:  # a pointer forward, out of the packet
        data[12:14] = struct.pack("!H", 0xC000 | rng.randrange(len(data), 0x3FFF))
    else:
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def seeds(name: str) -> list[bytes]:
    """Valid queries to mutate: our own name, unknown names, every type, with and without EDNS."""
    names = (
        name,
        name.upper(),
        "unknown.anchors.test",
        "x" * 63 + ".test",
        "2.0.81.10.in-addr.arpa",
    )
    return [query(0, n, t, edns=e) for n in names for t in TYPES[:8] for e in (False, True)]


def real_query(name: str, address: str, qid: int) -> float | None:
    """Seconds until a correct answer (3 tries of 1 s), or None."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1.0)
    started = time.monotonic()
    try:
        for _ in range(3):
            sock.sendto(query(qid, name), RESOLVER)
            try:
                while True:
                    if answers_with(sock.recv(4096), qid, address):
                        return time.monotonic() - started
            except TimeoutError:
                continue
        return None
    finally:
        sock.close()


def udp_storm(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    base = seeds(args.name)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sent = replies = bad_replies = real_ok = 0
    real_failed: list[int] = []
    slowest = 0.0
    for i in range(args.count):
        roll = rng.random()
        seed = rng.randbytes(2) + base[rng.randrange(len(base))][2:]
        if roll < 0.4:
            packet = rng.randbytes(rng.choice((0, 1, 2, 11, 12, 13, rng.randrange(600))))
        elif roll < 0.85:
            packet = mutate(seed, rng)
        else:  # valid, so the answer and forward paths run under the storm too
            packet = seed
        try:
            sock.sendto(packet, RESOLVER)
            sent += 1
        except BlockingIOError:
            select.select([], [sock], [], 0.05)
        except OSError:
            pass  # e.g. an ICMP error of an earlier packet, reported here
        if i % 64 == 0:
            replies, bad_replies = _drain(sock, replies, bad_replies)
        if i % args.check_every == 0:
            took = real_query(args.name, args.address, 0xFFFF - (i // args.check_every) % 4096)
            if took is None:
                real_failed.append(i)
            else:
                real_ok += 1
                slowest = max(slowest, took)
    time.sleep(0.5)
    replies, bad_replies = _drain(sock, replies, bad_replies)
    return {
        "sent": sent,
        "replies": replies,
        "bad_replies": bad_replies,
        "real_ok": real_ok,
        "real_failed": real_failed,
        "slowest_real_ms": round(slowest * 1000, 1),
    }


def _drain(sock: socket.socket, replies: int, bad: int) -> tuple[int, int]:
    """Every reply to garbage must at least be a DNS response header (QR set)."""
    while True:
        try:
            data = sock.recv(65535)
        except (BlockingIOError, ConnectionRefusedError):
            return replies, bad
        replies += 1
        if len(data) < 12 or not data[2] & 0x80:
            bad += 1


# --- TCP ---

TCP_KINDS = (
    "never_closing",  # connect, send nothing
    "partial_prefix",  # one byte of the length
    "prefix_only",  # a length, no message
    "short_body",  # a length, part of the message
    "zero_length",
    "oversize",  # length 65535 and more bytes than that, garbage
    "garbage",
    "slowloris",  # one byte a second, never a whole message
    "valid_then_hold",  # one real query, read the answer, stay
    "never_reading",  # pipeline queries, never read an answer
)


def _open(kind: str, rng: random.Random, name: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(3.0)
    try:
        sock.connect(RESOLVER)
        framed = query(rng.randrange(65536), name)
        framed = struct.pack("!H", len(framed)) + framed
        payload = {
            "never_closing": b"",
            "partial_prefix": b"\x00",
            "prefix_only": b"\x01\x00",
            "short_body": b"\x01\x2c" + rng.randbytes(50),
            "zero_length": b"\x00\x00",
            "oversize": b"\xff\xff" + rng.randbytes(66000),
            "garbage": rng.randbytes(rng.randrange(1, 2000)),
            "slowloris": b"\x00",
            "valid_then_hold": framed,
            "never_reading": b"",
        }[kind]
        if payload:
            sock.sendall(payload)
        sock.setblocking(False)
        if kind == "never_reading":  # 512 KiB of queries; their answers are never read
            with contextlib.suppress(OSError):  # BlockingIOError: the server stopped reading
                for _ in range(200):
                    sock.send(framed * 64)
        return sock
    except OSError:
        sock.close()
        return None


def tcp_attack(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    started = time.monotonic()
    live: dict[socket.socket, tuple[str, float]] = {}
    refused = 0
    for i in range(args.count):
        kind = TCP_KINDS[i % len(TCP_KINDS)]
        sock = _open(kind, rng, args.name)
        if sock is None:
            refused += 1
        else:
            live[sock] = (kind, time.monotonic())
    closed: dict[str, list[float]] = {k: [] for k in TCP_KINDS}
    deadline = time.monotonic() + args.hold
    next_drip = time.monotonic() + 1.0
    while live and time.monotonic() < deadline:
        readable, _, _ = select.select(list(live), [], [], 0.2)
        for sock in readable:
            kind, opened = live[sock]
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if kind == "valid_then_hold" and data:
                continue  # the answer; keep holding
            if not data:
                closed[kind].append(time.monotonic() - opened)
                del live[sock]
                sock.close()
        if time.monotonic() >= next_drip:
            next_drip += 1.0
            for sock, (kind, _) in live.items():
                if kind == "slowloris":
                    with contextlib.suppress(OSError):
                        sock.send(b"\x00")
    still_open = {}
    for sock, (kind, _) in live.items():
        still_open[kind] = still_open.get(kind, 0) + 1
        sock.close()
    return {
        "opened": args.count - refused,
        "refused": refused,
        "still_open": still_open,
        "closed": {k: len(v) for k, v in closed.items()},
        "slowest_close_s": round(max((max(v) for v in closed.values() if v), default=0.0), 2),
        "took_s": round(time.monotonic() - started, 2),
    }


# --- load and latency ---


def flood(args: argparse.Namespace) -> dict:
    names = args.name.split(",")
    packets = [query(i, names[i % len(names)]) for i in range(256)]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sent = 0
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        for packet in packets:
            try:
                sock.sendto(packet, RESOLVER)
                sent += 1
            except (BlockingIOError, ConnectionRefusedError):
                pass
    return {"sent": sent, "seconds": args.seconds}


def tcp_flood(args: argparse.Namespace) -> dict:
    """`--count` connections pipelining queries as fast as the server takes them (answers
    read and dropped), for `--seconds`."""
    names = args.name.split(",")
    chunk = b"".join(
        struct.pack("!H", len(q)) + q
        for q in (query(i, names[i % len(names)]) for i in range(1024))
    )
    socks = []
    for _ in range(args.count):
        sock = socket.create_connection(RESOLVER, timeout=3)
        sock.setblocking(False)
        socks.append(sock)
    sent = 0
    end = time.monotonic() + args.seconds
    while socks and time.monotonic() < end:
        readable, writable, _ = select.select(socks, socks, [], 0.1)
        for sock in readable:
            try:
                if not sock.recv(1 << 20):
                    socks.remove(sock)
            except BlockingIOError:
                pass
            except OSError:
                socks.remove(sock)
        for sock in writable:
            if sock in socks:
                with contextlib.suppress(BlockingIOError):
                    sent += sock.send(chunk)
    for sock in socks:
        sock.close()
    return {"sent_bytes": sent, "connections_left": len(socks)}


def probe(args: argparse.Namespace) -> dict:
    latencies: list[float] = []
    lost = 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(args.count):
        qid = i % 65536
        sock.settimeout(1.0)
        started = time.perf_counter()
        sock.sendto(query(qid, args.name), RESOLVER)
        try:
            while not answers_with(sock.recv(4096), qid, args.address):
                pass
            latencies.append((time.perf_counter() - started) * 1000)
        except TimeoutError:
            lost += 1
        time.sleep(args.interval)
    return {"latencies_ms": latencies, "lost": lost}


def burst(args: argparse.Namespace) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    started = time.monotonic()
    for i in range(args.count):
        sock.sendto(query(i, args.name), RESOLVER)
    rcodes: dict[str, int] = {}
    seen: set[int] = set()
    sock.settimeout(args.wait)
    try:
        while len(seen) < args.count:
            reply = sock.recv(4096)
            rid, flags = struct.unpack_from("!HH", reply)
            if rid in seen:
                continue
            seen.add(rid)
            key = str(flags & 0x000F)
            rcodes[key] = rcodes.get(key, 0) + 1
    except TimeoutError:
        pass
    return {"rcodes": rcodes, "answered": len(seen), "took_s": time.monotonic() - started}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "kind", choices=("udp-storm", "tcp-attack", "flood", "tcp-flood", "probe", "burst")
    )
    parser.add_argument("--name", default="")
    parser.add_argument("--address", default="")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check-every", type=int, default=200)
    parser.add_argument("--hold", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--wait", type=float, default=3.0)
    args = parser.parse_args(argv)
    run = {
        "udp-storm": udp_storm,
        "tcp-attack": tcp_attack,
        "flood": flood,
        "tcp-flood": tcp_flood,
        "probe": probe,
        "burst": burst,
    }[args.kind]
    print(json.dumps(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
