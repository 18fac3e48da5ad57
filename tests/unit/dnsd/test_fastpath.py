"""The C hot loop (`_fastpath.answer_known`) against its specification, the Python of
`Batch.answer_known`: the same datagrams answered, the same bytes to the same clients, the same
ones handed back."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsd.serve import mmsg
from dnsd.serve.mmsg import MAX_DATAGRAM, Batch
from tests.support.requires import unavailable

Outcome = tuple[int, list[tuple[int, bytes]], list[bytes], list[bytes], list[list[bytes]]]


@pytest.fixture(autouse=True)
def _accelerated() -> None:
    if not mmsg.ACCELERATED:
        unavailable(
            "the C accelerator is not built (needs gcc and python3-dev, then "
            "`pip install -e .`) or DNSD_PURE_PYTHON is set"
        )


@contextmanager
def _loop(accelerated: bool) -> Iterator[None]:
    """`Batch.answer_known` in C (as built) or in Python (its specification)."""
    built = mmsg._fastpath
    mmsg._fastpath = built if accelerated else None
    try:
        yield
    finally:
        mmsg._fastpath = built


@contextmanager
def _sockets(clients: int) -> Iterator[tuple[socket.socket, list[socket.socket]]]:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(clients)]
    try:
        server.bind(("127.0.0.1", 0))
        for sock in senders:
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
        yield server, senders
    finally:
        server.close()
        for sock in senders:
            sock.close()


def _drain(sock: socket.socket) -> list[bytes]:
    got = []
    while True:
        try:
            got.append(sock.recv(65536))
        except BlockingIOError:
            return got


def _run(
    accelerated: bool,
    datagrams: list[tuple[int, bytes]],
    remembered: dict[bytes, bytes] | None,
    recall: Callable[[bytes], bytes | None] | None,
) -> Outcome:
    """Send `datagrams` (client number, bytes), answer them once, and see what came back."""
    clients = 1 + max((client for client, _ in datagrams), default=0)
    with _sockets(clients) as (server, senders):
        for client, data in datagrams:
            senders[client].sendto(data, server.getsockname())
        batch, hits, recalled = Batch(size=8), [], []
        with _loop(accelerated):
            received, misses = batch.answer_known(
                server.fileno(), remembered, recall, hits, recalled
            )
        return received, misses, hits, recalled, [_drain(sock) for sock in senders]


_keys = st.binary(min_size=8, max_size=14)  # a datagram under 12 octets is never looked up
_bodies = st.binary(min_size=0, max_size=40)


@settings(max_examples=150, deadline=None)
@given(
    remembered=st.dictionaries(_keys, _bodies, max_size=4),
    recallable=st.dictionaries(_keys, _bodies, max_size=4),
    picks=st.lists(
        st.tuples(st.integers(0, 2), st.binary(min_size=0, max_size=2), st.integers(0, 9)),
        max_size=8,
    ),
    without=st.sampled_from(["none", "remembered", "recall"]),
)
def test_the_c_loop_does_what_its_specification_does(
    remembered: dict[bytes, bytes],
    recallable: dict[bytes, bytes],
    picks: list[tuple[int, bytes, int]],
    without: str,
) -> None:
    keys = [*remembered, *recallable, b"\x01\x00\x00\x01"]  # and one key known to neither
    datagrams = [(client, ident + keys[pick % len(keys)]) for client, ident, pick in picks]
    asked: dict[bool, list[bytes]] = {True: [], False: []}
    outcomes = {}
    for accelerated in (True, False):

        def recall(key: bytes, accelerated: bool = accelerated) -> bytes | None:
            asked[accelerated].append(key)
            return recallable.get(key)

        outcomes[accelerated] = _run(
            accelerated,
            datagrams,
            None if without == "remembered" else remembered,
            None if without == "recall" else recall,
        )
    assert outcomes[True] == outcomes[False]
    assert asked[True] == asked[False]
    received, misses, hits, recalled, replies = outcomes[True]
    assert received == len(datagrams)
    assert len(misses) + len(hits) + len(recalled) == len(datagrams)
    for index, packet in misses:
        assert datagrams[index][1] == packet
    answered = [len(got) for got in replies]
    assert sum(answered) == len(hits) + len(recalled)


def test_a_known_query_gets_its_own_id_and_the_value() -> None:
    query = b"\x12\x34" + b"the question"
    other = b"\x00\x07" + b"other question"
    outcome = _run(True, [(0, query), (0, other)], {b"the question": b"answer"}, None)
    received, misses, hits, recalled, replies = outcome
    assert received == 2
    assert misses == [(1, other)]
    assert hits == [b"answer"] and recalled == []
    assert replies == [[b"\x12\x34answer"]]


def test_a_value_too_long_for_a_slot_is_handed_back() -> None:
    long = b"x" * (MAX_DATAGRAM - 1)
    for accelerated in (True, False):
        query = b"\x00\x01" + b"query bytes"
        outcome = _run(accelerated, [(0, query)], {b"query bytes": long}, None)
        assert outcome[1] == [(0, query)]
        assert outcome[2] == [] and outcome[4] == [[]]


def test_nothing_waiting_is_no_datagram() -> None:
    with _sockets(0) as (server, _):
        assert Batch(size=4).answer_known(server.fileno(), {}, None, [], []) == (0, [])


def test_a_closed_socket_raises_oserror_in_both() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fd = sock.fileno()
    sock.close()
    batch = Batch(size=4)
    for accelerated in (True, False):
        with _loop(accelerated), pytest.raises(OSError):
            batch.answer_known(fd, {}, None, [], [])


def test_an_exception_in_recall_propagates() -> None:
    def broken(_key: bytes) -> bytes | None:
        raise RuntimeError("recall broke")

    with pytest.raises(RuntimeError, match="recall broke"):
        _run(True, [(0, b"\x00\x01" + b"query bytes")], {}, broken)


def test_wrong_argument_types_are_type_errors() -> None:
    with _sockets(0) as (server, _):
        batch = Batch(size=4)
        with pytest.raises(TypeError, match="remembered must be a dict"):
            batch.answer_known(server.fileno(), [], None, [], [])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="recall a callable"):
            batch.answer_known(server.fileno(), {}, {}, [], [])  # type: ignore[arg-type]
