"""`mmsg.Batch.sender`: the client of each datagram of a batch, decoded once per address."""

from __future__ import annotations

import socket

import pytest

from dnsd.serve.mmsg import Batch


def _exchange(family: int, host: str, clients: int) -> None:
    server = socket.socket(family, socket.SOCK_DGRAM)
    server.bind((host, 0))
    senders = [socket.socket(family, socket.SOCK_DGRAM) for _ in range(clients)]
    for sock in senders:
        sock.bind((host, 0))
    try:
        for round_ in range(2):  # the second round answers from the decoded addresses
            for i, sock in enumerate(senders):
                sock.sendto(bytes([round_, i]), server.getsockname()[:2])
            batch = Batch(size=8)
            packets = batch.recv(server.fileno())
            assert packets == [bytes([round_, i]) for i in range(clients)]
            for i, sock in enumerate(senders):
                assert batch.sender(i) == sock.getsockname()[:2]
    finally:
        server.close()
        for sock in senders:
            sock.close()


def test_ipv4_senders() -> None:
    _exchange(socket.AF_INET, "127.0.0.1", 3)


def test_ipv6_senders() -> None:
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    _exchange(socket.AF_INET6, "::1", 2)


def test_one_batch_serves_ipv4_then_ipv6_sockets() -> None:
    """The batch is shared by every listener: an IPv4 batch shrinks its address slots, and
    the next IPv6 batch must still get whole addresses (and an IPv4 one after it)."""
    v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        v6.bind(("::1", 0))
    except OSError as exc:
        v4.close()
        v6.close()
        pytest.skip(f"no IPv6 loopback here: {exc}")
    v4.bind(("127.0.0.1", 0))
    client4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    client4.bind(("127.0.0.1", 0))
    client6.bind(("::1", 0))
    batch = Batch(size=8)
    try:
        for server, client in ((v4, client4), (v6, client6), (v4, client4)):
            for i in range(3):
                client.sendto(bytes([i]), server.getsockname()[:2])
            assert batch.recv(server.fileno()) == [bytes([i]) for i in range(3)]
            for i in range(3):
                assert batch.sender(i) == client.getsockname()[:2]
    finally:
        for sock in (v4, v6, client4, client6):
            sock.close()
