"""The watch stream's keep-alive against a fake gateway on loopback: progress requests while
idle, messages across chunk boundaries, a silent peer declared dead."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from netcore.store.etcd_watch import StreamSilent, WatchStream

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def _result(revision: int) -> bytes:
    return json.dumps({"result": {"header": {"revision": str(revision)}}}).encode() + b"\n"


class FakeGateway:
    """Accepts one watch; answers each progress request until told to go quiet."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.progress_requests = 0
        self.quiet = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with self.listener:
            conn, _ = self.listener.accept()
        with conn:
            received = b""
            while b"create_request" not in received:
                received += conn.recv(1 << 20)
            # One message split across two chunks, then one per progress request.
            message = _result(7)
            conn.sendall(HEAD + _chunk(message[:10]) + _chunk(message[10:]))
            counted = 0
            while chunk := conn.recv(1 << 20):
                received += chunk
                total = received.count(b"progress_request")
                while counted < total:
                    counted += 1
                    self.progress_requests = counted
                    if not self.quiet.is_set():
                        conn.sendall(_chunk(_result(7 + counted)))


def test_idle_stream_sends_progress_requests_and_a_silent_one_is_declared_dead():
    gateway = FakeGateway()
    stream = WatchStream.open(
        gateway.endpoint,
        {"create_request": {}},
        {},
        timeout=2,
        tls=None,
        opened=lambda sock: None,
        progress_every_s=0.1,
        silence_s=0.5,
    )
    messages = stream.messages()
    try:
        revisions = [int(next(messages)["header"]["revision"]) for _ in range(4)]
        assert revisions[0] == 7 and revisions == sorted(revisions)
        assert gateway.progress_requests >= 3  # one with the create request, then while idle
        gateway.quiet.set()
        started = time.monotonic()
        with pytest.raises(StreamSilent, match="etcd sent nothing"):
            for _ in messages:
                pass
        assert 0.4 < time.monotonic() - started < 2
    finally:
        stream.close()
        gateway.thread.join(timeout=2)
