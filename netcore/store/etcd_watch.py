"""One etcd watch stream over the v3 JSON gateway, that notices when it has gone silent.

A watch that only reads waits forever when its connection dies without a word (the etcd host
loses power, a partition, a NAT forgets the flow): nothing ever arrives, and nothing says so.
So the stream also writes: while it has heard nothing for `PROGRESS_EVERY_S` it sends etcd a
`progress_request`, which etcd answers with the current revision; when nothing at all has come
back for `SILENCE_S`, the stream is declared dead (`StreamSilent`) and the caller resumes the
watch elsewhere or later.

Why a raw socket rather than http.client: the gateway reads watch requests from the request
body as it arrives, so the body stays open (a large Content-Length, newline-separated JSON:
a chunked body is not delivered to the gateway before it ends); and the reader needs a read
timeout that does not spoil the stream, which http.client's buffered response cannot give.

One more wrinkle, found against etcd 3.4 (measured, not documented): the gateway's first reply
may wait for more request bytes to arrive. Go's HTTP/1 server reads, and throws away, part of
a request body that a handler left unread before it sends a reply (net/http's
maxPostHandlerReadBytes, 256 KiB), and the gateway's streaming handler shares that body. So the
create request is followed by `PADDING` bytes of whitespace (skipped by whichever side reads
them), and until the reply starts a progress request goes out every `NUDGE_S`: over 60 opens,
first reply after 7 ms (median), 0.11 s at most; without both, some never got one.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

PROGRESS_EVERY_S = 1.0  # a progress request after this long without a message
SILENCE_S = 3.0  # nothing from etcd for this long, progress requests notwithstanding: dead
BODY_LENGTH = 1 << 40  # the request body's announced length: never reached
_PROGRESS = b'{"progress_request":{}}\n'
NUDGE_S = 0.05  # until the reply starts: a progress request this often (see above)
PADDING = b" " * (512 << 10)  # twice what Go's server may throw away, see above


class StreamSilent(OSError):
    """The watch connection stopped answering."""


class WatchStream:
    """Reads JSON messages from one watch; `messages()` yields each decoded `result`."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        progress_every_s: float = PROGRESS_EVERY_S,
        silence_s: float = SILENCE_S,
    ) -> None:
        self.sock = sock
        self.progress_every_s = progress_every_s
        self.silence_s = silence_s
        self._buffer = b""

    @classmethod
    def open(
        cls,
        endpoint: str,
        request: dict[str, Any],
        headers: dict[str, str],
        *,
        timeout: float,
        tls: ssl.SSLContext | None,
        opened: Callable[[socket.socket], None],
        **kw: float,
    ) -> WatchStream:
        """Connect, send the request headers and the create request, read the reply headers.
        Raises OSError (a StreamSilent on a timeout) when etcd does not let the watch start."""
        host, _, port = endpoint.rpartition(":")
        host = host.strip("[]")
        sock = socket.create_connection((host, int(port)), timeout=timeout)
        try:
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname=host)
            opened(sock)
            head = [
                "POST /v3/watch HTTP/1.1",
                f"Host: {endpoint}",
                f"Content-Length: {BODY_LENGTH}",
                *(f"{k}: {v}" for k, v in headers.items()),
            ]
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            sock.sendall(json.dumps(request).encode() + b"\n" + PADDING + b"\n" + _PROGRESS)
            stream = cls(sock, **kw)
            # No call may block longer than that: a TLS record cut short, a full send window.
            sock.settimeout(stream.silence_s)
            stream._read_head(timeout)
            return stream
        except BaseException:
            sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    # --- reading ---

    def _fill(self, deadline: float, *, keep_alive: bool, every: float | None = None) -> None:
        """Read more bytes into the buffer before `deadline` (StreamSilent after it); with
        `keep_alive`, send a progress request after each `every` seconds of waiting."""
        last_word = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise StreamSilent(f"etcd sent nothing for {now - last_word:.1f} s")
            pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
            wait = min(deadline - now, every or self.progress_every_s)
            if pending or select.select([self.sock], [], [], wait)[0]:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise OSError("etcd closed the watch stream")
                self._buffer += chunk
                return
            if keep_alive:
                self.sock.sendall(_PROGRESS)

    def _line(
        self, deadline: float, *, keep_alive: bool = False, every: float | None = None
    ) -> bytes:
        while b"\r\n" not in self._buffer:
            self._fill(deadline, keep_alive=keep_alive, every=every)
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line

    def _exactly(self, n: int, deadline: float, *, keep_alive: bool = False) -> bytes:
        while len(self._buffer) < n:
            self._fill(deadline, keep_alive=keep_alive)
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _read_head(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        status = self._line(deadline, keep_alive=True, every=NUDGE_S).decode(errors="replace")
        headers: dict[str, str] = {}
        while line := self._line(deadline):
            name, _, value = line.decode(errors="replace").partition(":")
            headers[name.strip().lower()] = value.strip()
        code = status.split(" ", 2)[1] if status.count(" ") else "?"
        if code != "200":
            body = self._buffer[:300].decode(errors="replace")
            raise OSError(f"watch refused: {status} {body}")
        if headers.get("transfer-encoding", "").lower() != "chunked":
            raise OSError(f"watch reply is not chunked: {headers}")

    def messages(self) -> Iterator[dict[str, Any]]:
        """Each message's `result`, as etcd sends them; StreamSilent when etcd goes quiet."""
        pending = b""
        while True:
            deadline = time.monotonic() + self.silence_s
            size_line = self._line(deadline, keep_alive=True)
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                raise OSError("etcd ended the watch stream")
            pending += self._exactly(size + 2, deadline, keep_alive=True)[:-2]
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if line.strip():
                    yield json.loads(line).get("result") or {"error": line[:200].decode()}
