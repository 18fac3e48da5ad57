"""The query log's lines, its bounded queue (drops counted and noted) and its rotation."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from dnsd.metrics.counters import QueryStats
from dnsd.metrics.querylog import QueryLog, question


def reply(name: str, qtype: str = "A", rcode: str = "NOERROR", answers: int = 1) -> bytes:
    record = DNSRecord.question(name, qtype).reply()
    record.header.rcode = getattr(RCODE, rcode)
    for _ in range(answers):
        record.add_answer(RR(name, QTYPE.A, rdata=A("10.0.0.2")))
    return bytes(record.pack())


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_question_in_presentation_form():
    assert question(reply("web.app"), 2) == ("web.app.", "A")
    assert question(reply("web.app")[2:], 0) == ("web.app.", "A")
    assert question(reply("x", "TYPE65280", answers=0), 2) == ("x.", "TYPE65280")
    odd = DNSRecord.question("a.b", "A")
    odd.questions[0].qname.label = (b"a.b", b"c d")
    assert question(bytes(odd.pack()), 2)[0] == "a\\.b.c\\032d."
    assert question(b"\x00" * 12, 2) == ("", "")


def test_a_line_per_query_with_every_field(tmp_path):
    path = tmp_path / "q.jsonl"
    log = QueryLog(str(path), 1 << 20, sandbox_name=lambda sid: "web")
    stats = QueryStats("a" * 64, "app", log)
    log.start()
    try:
        stats.batch([reply("api")[2:]], [reply("db", "MX", answers=0)], 1, 0.0004)
        stats.forwarded(reply("ext.test", rcode="NXDOMAIN", answers=0), 0.012, "198.51.100.53:53")
        wait_for(lambda: path.exists() and len(path.read_text().splitlines()) == 3)
    finally:
        log.close()
    cached, nodata, nx = lines_of(path)
    assert (
        cached["outcome"] == "cached" and cached["qname"] == "api." and cached["upstream"] is None
    )
    assert nodata["outcome"] == "nodata" and nodata["qtype"] == "MX"
    assert nx == {
        "time": nx["time"], "sandbox": "web", "network": "app", "qname": "ext.test.",
        "qtype": "A", "rcode": "NXDOMAIN", "outcome": "nxdomain", "upstream": "198.51.100.53:53",
        "latency_ms": 12.0,
    }  # fmt: skip
    assert nx["time"].endswith("Z") and "T" in nx["time"]


def test_a_full_queue_drops_counts_and_notes(tmp_path):
    path = tmp_path / "q.jsonl"
    log = QueryLog(str(path), 1 << 20, queue_limit=10)  # not started: nothing drains the queue
    stats = QueryStats("b" * 64, "app", log)
    stats.batch([reply("a")[2:]] * 8, [reply("b")] * 4, 0, 0.001)
    stats.forwarded(reply("c"), 0.01, None)
    assert log.dropped == 3
    log.start()
    log.close()
    lines = lines_of(path)
    assert len(lines) == 11
    (note,) = [x for x in lines if "note" in x]
    assert note["dropped"] == 3 and "queue full" in note["note"]


def test_the_file_rotates_to_dot_1_and_never_passes_its_cap(tmp_path):
    path = tmp_path / "q.jsonl"
    cap = 8192
    log = QueryLog(str(path), cap, queue_limit=100_000)
    stats = QueryStats("c" * 64, "app", log)
    log.start()
    try:
        for _ in range(30):
            stats.batch([reply("name.app")[2:]] * 10, [], 0, 0.001)
        wait_for(lambda: log.written == 300)
    finally:
        log.close()
    assert log.rotations >= 3
    assert path.stat().st_size <= cap and Path(f"{path}.1").stat().st_size <= cap
    assert all(x["qname"] == "name.app." for x in lines_of(path) + lines_of(Path(f"{path}.1")))


def test_a_tiny_cap_is_refused():
    with pytest.raises(ValueError, match="too small"):
        QueryLog("/tmp/never", 100)
