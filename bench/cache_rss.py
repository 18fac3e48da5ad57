"""The forward cache's memory bound: 1,000,000 distinct names through a cache of the default
size, in a fresh process, its RSS read when the cache first fills and at the end.

Run in a child process (`python3 -m bench.cache_rss N`, JSON on stdout) so the daemon's or the
bench's own memory is not in the numbers. The answers are what the mixed run's upstream sends
(two A records, EDNS), under the key a sandbox's query gets.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from dnsd.core.wire import parse_query
from dnsd.forward.cache import DEFAULT_SIZE, ForwardCache, cache_key

SCOPE = ("198.51.100.53",)


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _query(name: bytes, ident: int) -> bytes:
    labels = b"".join(bytes([len(p)]) + p for p in name.split(b"."))
    question = labels + b"\x00\x00\x01\x00\x01"
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
    return ident.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01" + question + opt


def _reply(query: bytes, question_end: int) -> bytes:
    record = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04"
    answers = record + b"\xc6\x33\x64\x07" + record + b"\xc6\x33\x64\x08"
    opt = query[question_end:]
    header = query[:2] + b"\x81\x80\x00\x01\x00\x02\x00\x00\x00\x01"
    return header + query[12:question_end] + answers + opt


def measure(names: int, size: int = DEFAULT_SIZE) -> dict[str, float]:
    cache = ForwardCache(size)
    before = _rss_mib()
    full = before
    started = time.perf_counter()
    for i in range(names):
        packet = _query(b"n%d.new.test" % i, i & 0xFFFF)
        query = parse_query(packet)
        cache.store(cache_key(SCOPE, query), query, _reply(packet, query.question_end), 0.0)
        if i + 1 == size:
            full = _rss_mib()
    return {
        "names": names,
        "size": size,
        "entries": len(cache),
        "rss_before_mib": before,
        "rss_full_mib": full,
        "rss_end_mib": _rss_mib(),
        "us_per_store": (time.perf_counter() - started) / names * 1e6,
    }


def run(names: int) -> dict[str, float]:
    """`measure` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.cache_rss", str(names)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return json.loads(out.stdout)


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]))))
