"""The query log: one JSON line per query, written by a thread of its own, never in the way.

Listeners only append tuples to a bounded deque (an atomic C call); when it is full the query
is counted as dropped instead. The writer thread formats and writes lines in chunks, pausing
between them so that it never holds the interpreter long while queries wait, rotates the file to
`PATH.1` before it would pass `max_bytes`, and notes in the log how many lines were dropped.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING

from .outcome import CACHED, LOCAL, OUTCOMES, outcome_of

if TYPE_CHECKING:
    from .counters import QueryStats

log = logging.getLogger(__name__)

QUEUE_LIMIT = 16384  # queries waiting for the writer; more are dropped (and counted)
CHUNK = 1024  # lines formatted before the writer lets the event loop run
PAUSE_S = 0.002  # between chunks: the loop thread gets the interpreter back
IDLE_S = 0.05  # how often an idle writer looks at the queue
RCODE_NAMES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED")
QTYPE_NAMES = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
    33: "SRV", 35: "NAPTR", 43: "DS", 64: "SVCB", 65: "HTTPS", 255: "ANY", 257: "CAA",
}  # fmt: skip

# (wall time, sandbox id, network, message, flags offset, positive outcome, seconds, upstream)
Entry = tuple[float, str, str, bytes, int, int, float, "str | None"]


def question(message: bytes, flags_at: int) -> tuple[str, str]:
    """(qname, qtype) of the first question, in presentation form ("" and "" when absent)."""
    if len(message) < flags_at + 10 or not (message[flags_at + 2] or message[flags_at + 3]):
        return "", ""
    labels: list[str] = []
    i, end = flags_at + 10, len(message)
    while i < end and message[i] and message[i] < 0xC0:
        size = message[i]
        labels.append("".join(_char(b) for b in message[i + 1 : i + 1 + size]))
        i += size + 1
    i += 2 if i < end and message[i] >= 0xC0 else 1
    if i + 2 > end:
        return ".".join(labels) + ".", ""
    number = (message[i] << 8) | message[i + 1]
    return ".".join(labels) + ".", QTYPE_NAMES.get(number, f"TYPE{number}")


def _char(byte: int) -> str:
    if byte in (0x2E, 0x5C) or not 0x21 <= byte <= 0x7E:
        return "\\." if byte == 0x2E else "\\\\" if byte == 0x5C else f"\\{byte:03d}"
    return chr(byte)


def format_entry(entry: Entry, sandbox_name: str) -> str:
    """One JSON line (without the newline)."""
    stamp, _sid, network, message, flags_at, positive, seconds, upstream = entry
    qname, qtype = question(message, flags_at)
    rcode = message[flags_at + 1] & 0x0F if len(message) > flags_at + 1 else 0
    return json.dumps(
        {
            "time": _iso(stamp),
            "sandbox": sandbox_name,
            "network": network,
            "qname": qname,
            "qtype": qtype,
            "rcode": RCODE_NAMES[rcode] if rcode < len(RCODE_NAMES) else f"RCODE{rcode}",
            "outcome": OUTCOMES[outcome_of(message, flags_at, positive)],
            "upstream": upstream,
            "latency_ms": round(seconds * 1000, 3),
        },
        separators=(",", ":"),
    )


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1000):03d}Z"


class QueryLog:
    """Owns the writer thread; `offer*` are called on the event loop."""

    def __init__(
        self,
        path: str,
        max_bytes: int,
        *,
        sandbox_name: Callable[[str], str] = lambda sid: sid[:12],
        queue_limit: int = QUEUE_LIMIT,
    ) -> None:
        if max_bytes < 4096 and path != "-":
            raise ValueError(f"a query log cap of {max_bytes} bytes is too small (>= 4096)")
        self.path = path
        self.max_bytes = max_bytes
        self.sandbox_name = sandbox_name
        self.queue_limit = queue_limit
        self.dropped = 0  # by the loop thread
        self.written = 0  # by the writer thread
        self.rotations = 0
        self._queue: deque[Entry] = deque()
        self._noted_drops = 0
        self._stop = threading.Event()
        self._out: IO[bytes] | None = None
        self._size = 0
        self._thread = threading.Thread(target=self._run, name="query-log", daemon=True)

    # --- the loop's side ---

    def offer_batch(
        self, stats: QueryStats, hits: Sequence[bytes], fresh: Sequence[bytes], seconds: float
    ) -> None:
        queue = self._queue
        room = self.queue_limit - len(queue)
        if room < len(hits) + len(fresh):
            self.dropped += len(hits) + len(fresh) - max(room, 0)
            if room <= 0:
                return
        now, sid, network = time.time(), stats.sandbox_id, stats.network
        for body in hits[:room]:
            queue.append((now, sid, network, body, 0, CACHED, seconds, None))
        room -= len(hits)
        for reply in fresh[: max(room, 0)]:
            queue.append((now, sid, network, reply, 2, LOCAL, seconds, None))

    def offer(
        self,
        stats: QueryStats,
        message: bytes,
        flags_at: int,
        positive: int,
        seconds: float,
        upstream: str | None,
    ) -> None:
        if len(self._queue) >= self.queue_limit:
            self.dropped += 1
            return
        self._queue.append(
            (time.time(), stats.sandbox_id, stats.network, message, flags_at, positive, seconds,
             upstream)
        )  # fmt: skip

    # --- the writer thread ---

    def start(self) -> None:
        self._open()
        self._thread.start()

    def close(self) -> None:
        """Write what is queued, then stop (any thread but the writer)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        if self._out is not None and self.path != "-":
            self._out.close()

    def _open(self) -> None:
        if self.path == "-":
            self._out = sys.stdout.buffer
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._out = open(self.path, "ab")  # noqa: SIM115 - closed in close() or on rotation
        self._size = self._out.tell()

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            wrote = self._write_some()
            if not wrote:
                if stopping:
                    return
                self._stop.wait(IDLE_S)
            else:
                time.sleep(PAUSE_S)

    def _write_some(self) -> int:
        queue, lines = self._queue, []
        for _ in range(min(CHUNK, len(queue))):
            entry = queue.popleft()
            try:
                lines.append(format_entry(entry, self.sandbox_name(entry[1])))
            except Exception:  # a bug must cost one line, not the log
                log.exception("query log: cannot format an entry")
        dropped = self.dropped
        if dropped > self._noted_drops:
            lines.append(
                json.dumps(
                    {
                        "time": _iso(time.time()),
                        "note": "query log queue full: queries not logged",
                        "dropped": dropped - self._noted_drops,
                        "dropped_total": dropped,
                    },
                    separators=(",", ":"),
                )
            )
            self._noted_drops = dropped
        if lines:
            try:
                self._write(lines)
            except OSError as exc:  # a full disk: the log stops, DNS does not
                log.warning("query log %s: %s; lines lost", self.path, exc)
        return len(lines)

    def _write(self, lines: list[str]) -> None:
        out = self._out
        assert out is not None
        data = ("\n".join(lines) + "\n").encode()
        if self.path != "-" and self._size + len(data) > self.max_bytes:
            for line in lines:  # up to the cap, then rotate and go on
                raw = (line + "\n").encode()
                if self._size + len(raw) > self.max_bytes:
                    self._rotate()
                    out = self._out
                    assert out is not None
                out.write(raw)
                self._size += len(raw)
        else:
            out.write(data)
            self._size += len(data)
        out.flush()
        self.written += len(lines)

    def _rotate(self) -> None:
        assert self._out is not None
        self._out.close()
        os.replace(self.path, self.path + ".1")
        self.rotations += 1
        self._open()
