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
