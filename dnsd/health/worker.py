"""The probe worker process: `python3 -m dnsd.health.worker [--log-level LEVEL]`.

Runs the daemon's checks (dnsd.health.scheduler) and nothing else: commands come on stdin,
results go to stdout in batches (dnsd.health.protocol), logs to stderr. The daemon keeps the
health states and the view; this process keeps the probes' garbage (sockets, tasks, futures,
subprocess transports) and its collector's pauses away from the DNS loop. It ends at EOF on
stdin (the daemon closed it, or died), after cancelling every probe: a command's process
group is killed, so a check leaves no process behind.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable

from . import protocol
from .probes import run_probe
from .scheduler import Probe, Scheduler
from .state import Result

log = logging.getLogger("dnsd.health.worker")

BATCH_DELAY_S = 0.02  # results reach the daemon at most this late, in one line per batch
MAX_BATCH = 256  # results a line (a line stays well under the daemon's read limit)
READ_LIMIT = 1 << 20  # bytes of one command line
NICENESS = 10


class Batcher:
    """Collects results and writes them as one line every BATCH_DELAY_S (or MAX_BATCH)."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._pending: list[tuple[int, Result]] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(self, key: int, result: Result) -> None:
        self._pending.append((key, result))
        if len(self._pending) >= MAX_BATCH:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(BATCH_DELAY_S, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            batch, self._pending = self._pending, []
            self._write(protocol.results(batch))


async def serve(
    reader: asyncio.StreamReader, write: Callable[[bytes], None], *, probe: Probe = run_probe
) -> None:
    """Follow the commands from `reader` until EOF, reporting through `write`."""
    batcher = Batcher(write)
    scheduler = Scheduler(batcher.add, probe=probe)
    try:
        while line := await reader.readline():
            try:
                op, key, check, target = protocol.read_command(line)
            except protocol.ProtocolError as exc:
                log.error("%s", exc)
                continue
            if op == "start" and check is not None and target is not None:
                scheduler.start(key, check, target)
            elif op == "retarget" and target is not None:
                scheduler.retarget(key, target)
            elif op == "stop":
                scheduler.stop(key)
            else:
                log.error("unknown command %r for check %d", op, key)
    finally:
        await scheduler.close()
        batcher.flush()


def _write_stdout(data: bytes) -> None:
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        # The daemon is gone: end (asyncio.run cancels the probes, killing their processes).
        raise SystemExit(0) from None


async def _main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await serve(reader, _write_stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m dnsd.health.worker", description=__doc__)
    parser.add_argument("--log-level", default="info")
    opts = parser.parse_args(argv)
    logging.basicConfig(
        level=opts.log_level.upper(),
        format="%(asctime)s dnsd-health-worker %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # Below the daemon: on a busy (or pinned) CPU, the DNS loop runs first; a probe can wait
    # a few milliseconds, an answer should not.
    os.nice(NICENESS)
    asyncio.run(_main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
