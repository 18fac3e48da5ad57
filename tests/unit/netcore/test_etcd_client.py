"""The etcd client's timeouts against a fake member on loopback: a member that took a request
and answers late is waited for; one that never answers is given up on."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time

import pytest

from netcore.store.etcd_client import EtcdClient, EtcdOptions, EtcdUnavailable

REPLY = json.dumps({"header": {"revision": "42"}, "kvs": []}).encode()


class SlowMember:
    """Reads one request, waits `delay_s` (None: forever), then answers it."""

    def __init__(self, delay_s: float | None) -> None:
        self.delay_s = delay_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with self.listener:
            conn, _ = self.listener.accept()
        with conn:
            received = b""
            while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
                received += conn.recv(1 << 16)
            if self.delay_s is None:
                self.done.wait()
                return
            time.sleep(self.delay_s)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(REPLY), REPLY)
            )


def test_a_late_reply_past_the_connect_timeout_is_waited_for():
    member = SlowMember(delay_s=0.6)
    client = EtcdClient(EtcdOptions((member.endpoint,), timeout_s=0.2, reply_timeout_s=3.0))
    kvs, revision = client.range("/dnsd/x")
    assert (kvs, revision) == ([], 42)


def test_a_member_that_never_answers_is_given_up_on_after_the_reply_timeout():
    member = SlowMember(delay_s=None)
    client = EtcdClient(EtcdOptions((member.endpoint,), timeout_s=0.2, reply_timeout_s=0.5))
    started = time.monotonic()
    with pytest.raises(EtcdUnavailable, match="timed out"):
        client.range("/dnsd/x")
    assert time.monotonic() - started < 3.0
    member.done.set()


class HangingUpMember:
    """Reads one request and hangs up, as a TLS etcd does on plain HTTP: with a close, or
    with a reset (SO_LINGER 0)."""

    def __init__(self, reset: bool) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.reset = reset
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with self.listener:
            conn, _ = self.listener.accept()
        with conn:
            conn.recv(1 << 16)
            if self.reset:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
def test_a_member_hanging_up_on_plain_http_suggests_tls(reset: bool):
    member = HangingUpMember(reset)
    client = EtcdClient(EtcdOptions((member.endpoint,), timeout_s=1.0, reply_timeout_s=2.0))
    with pytest.raises(EtcdUnavailable, match=r"etcd serves TLS\? give --etcd-cacert"):
        client.range("/dnsd/x")
