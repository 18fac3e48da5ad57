"""The probe worker: its protocol, its command loop with a scripted probe, and the real process
behind `ProbeWorker` (TCP checks against a loopback listener; killed, it is restarted and
logged; closed, it is gone), and a dead worker's commands killed by session."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from dnsd.health import protocol
from dnsd.health.client import ProbeWorker, kill_session
from dnsd.health.probes import Target
from dnsd.health.state import Result
from dnsd.health.worker import serve
from netcore.healthcheck import MS, SECOND, Healthcheck

CHECK = Healthcheck(("TCP", "80"), interval_ns=100 * MS, timeout_ns=SECOND, user="")


def test_protocol_round_trips_and_refuses_garbage():
    check = Healthcheck(("CMD", "sh", "-c", 'echo "é"'), 200 * MS, 3 * SECOND, 2, 5 * MS, "7")
    target = Target("/run/netns/x", None)
    assert protocol.read_command(protocol.start(4, check, target)) == ("start", 4, check, target)
    assert protocol.read_command(protocol.retarget(4, target)) == ("retarget", 4, None, target)
    assert protocol.read_command(protocol.stop(4)) == ("stop", 4, None, None)
    batch = [(4, Result(1.5, 2.25, -1, "x\n" * 3)), (9, Result(3.0, 3.0, 0, ""))]
    assert protocol.read_results(protocol.results(batch)) == batch
    for line in (b"{", b'{"op": "start"}', b'{"results": [[1, 2]]}', b"[]"):
        with pytest.raises(protocol.ProtocolError):
            protocol.read_command(line) if b"results" not in line else protocol.read_results(line)


def test_serve_runs_what_it_is_told_and_cancels_probes_at_eof():
    probed: list[str] = []
    cancelled: list[str] = []

    async def probe(check: Healthcheck, target: Target) -> Result:
        probed.append(target.address or "")
        if target.address == "10.0.0.9":  # hangs until cancelled
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.append(target.address)
                raise
        return Result(0.0, 0.0, 0, target.address or "")

    async def scenario() -> list[tuple[int, Result]]:
        reader = asyncio.StreamReader()
        lines: list[bytes] = []
        served = asyncio.create_task(serve(reader, lines.append, probe=probe))
        reader.feed_data(protocol.start(1, CHECK, Target("/x", "10.0.0.1")))
        reader.feed_data(b"not json\n")  # logged, skipped
        reader.feed_data(protocol.start(2, CHECK, Target("/x", "10.0.0.2")))
        await asyncio.sleep(0.35)
        reader.feed_data(protocol.stop(2) + protocol.retarget(1, Target("/x", "10.0.0.3")))
        reader.feed_data(protocol.start(3, CHECK, Target("/x", "10.0.0.9")))
        await asyncio.sleep(0.3)
        reader.feed_eof()
        await asyncio.wait_for(served, 5)
        return [item for line in lines for item in protocol.read_results(line)]

    results = asyncio.run(scenario())
    by_key = {key: [r.output for k, r in results if k == key] for key in (1, 2, 3)}
    assert by_key[1][0] == "10.0.0.1" and by_key[1][-1] == "10.0.0.3"
    assert 1 <= len(by_key[2]) <= 4 and set(by_key[2]) == {"10.0.0.2"}
    assert by_key[3] == [] and cancelled == ["10.0.0.9"]  # the hanging probe ended at EOF
    assert len(results) == len(probed) - 1  # every probe but the hanging one, reported


async def _until(condition: Callable[[], bool], limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is not alive
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_probe_worker_process_probes_is_restarted_when_killed_and_ends_at_close(caplog):
    caplog.set_level(logging.INFO, "dnsd.health.client")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    check = Healthcheck(("TCP", str(port)), interval_ns=100 * MS, timeout_ns=SECOND)
    got: list[tuple[int, int]] = []

    async def scenario() -> None:
        worker = ProbeWorker(lambda key, result: got.append((key, result.exit_code)))
        worker.start(7, check, Target("/x", "127.0.0.1"))
        await _until(lambda: (7, 0) in got)
        first = worker.pid
        assert first is not None and _alive(first)
        os.kill(first, signal.SIGKILL)
        await _until(lambda: worker.restarts == 1 and worker.pid not in (None, first))
        got.clear()
        await _until(lambda: (7, 0) in got)  # the new worker runs the check it was given
        listener.close()
        await _until(lambda: (7, 1) in got)  # refused: unhealthy
        worker.stop(7)
        await asyncio.sleep(0.1)
        got.clear()
        await asyncio.sleep(0.4)
        assert got == []
        second = worker.pid
        assert second is not None
        await worker.close()
        assert worker.pid is None and not _alive(second)

    try:
        asyncio.run(scenario())
    finally:
        listener.close()
    assert any("exited (signal 9)" in r.getMessage() for r in caplog.records), caplog.text


def test_kill_session_kills_a_dead_leaders_processes():
    # A leader in a session of its own starts a child in a process group of its own (as the
    # worker does with a check's command), prints its pid, then dies.
    script = (
        "import subprocess, sys\n"
        "child = subprocess.Popen(['sleep', '60'], process_group=0)\n"
        "print(child.pid, flush=True)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
    ) as leader:
        assert leader.stdout is not None
        child = int(leader.stdout.readline())
        leader.wait(10)
    try:
        assert _alive(child)
        assert kill_session(leader.pid) == 1
        deadline = time.monotonic() + 5
        while _alive(child):
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
