"""The daemon's side of the probe worker process (dnsd.health.worker).

`ProbeWorker` has the scheduler's interface (start, retarget, stop, close) and forwards each
call as a command line; result batches come back and go to `report`. It remembers every
running check, so a worker that dies (killed, out of memory, a bug) is logged and restarted
with all of them, after a delay that grows while restarts keep failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from netcore.healthcheck import Healthcheck

from . import protocol
from .probes import Target
from .scheduler import Report

log = logging.getLogger(__name__)

RESTART_DELAY_S = 0.5  # first restart; doubled per quick death, up to MAX_RESTART_DELAY_S
MAX_RESTART_DELAY_S = 10.0
STABLE_S = 30.0  # a worker that lived this long resets the delay
READ_LIMIT = 64 << 20  # bytes of one results line
CLOSE_WAIT_S = 5.0  # for the worker to cancel its probes after EOF, then it is killed


def kill_session(session: int, proc: Path = Path("/proc")) -> int:
    """SIGKILL every process of session `session` (a dead worker's: its commands' groups are
    in it); how many were signalled."""
    killed = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # pid (comm) state ppid pgrp session ...; comm may hold spaces and parentheses
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 3 and int(fields[3]) == session:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed


def worker_argv() -> list[str]:
    """This interpreter running the worker module of this very dnsd (see `_env`)."""
    level = logging.getLevelName(logging.getLogger("dnsd").getEffectiveLevel())
    return [sys.executable, "-m", "dnsd.health.worker", "--log-level", str(level).lower()]


def _env() -> dict[str, str]:
    # The package this daemon runs from comes first: a worker from another checkout (or an
    # older install) would not speak the same protocol.
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root if not path else f"{root}{os.pathsep}{path}"}


class ProbeWorker:
    """On the loop only. The worker starts with the first check and runs until `close`."""

    def __init__(self, report: Report, *, argv: Sequence[str] | None = None) -> None:
        self._report = report
        self._argv = list(argv) if argv is not None else worker_argv()
        self._wanted: dict[int, tuple[Healthcheck, Target]] = {}
        self._proc: asyncio.subprocess.Process | None = None
        self._closing = False
        self.restarts = 0
        self.results = 0
        self._supervisor: asyncio.Task[None] | None = None  # started with the first check

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    # --- the scheduler's interface ---

    def start(self, key: int, check: Healthcheck, target: Target) -> None:
        self._wanted[key] = (check, target)
        if self._supervisor is None and not self._closing:
            loop = asyncio.get_running_loop()
            self._supervisor = loop.create_task(self._supervise(), name="health-worker")
        self._send(protocol.start(key, check, target))

    def retarget(self, key: int, target: Target) -> None:
        if key in self._wanted:
            self._wanted[key] = (self._wanted[key][0], target)
            self._send(protocol.retarget(key, target))

    def stop(self, key: int) -> None:
        if self._wanted.pop(key, None) is not None:
            self._send(protocol.stop(key))

    def __len__(self) -> int:
        return len(self._wanted)

    async def close(self) -> None:
        """End the worker: EOF on its stdin (it cancels its probes), killed if it lingers."""
        self._closing = True
        if self._supervisor is None:
            return  # never started: no check ever
        proc = self._proc
        if proc is None:  # between two workers
            self._supervisor.cancel()
        elif proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._supervisor), CLOSE_WAIT_S)
        except asyncio.CancelledError:
            pass
        except TimeoutError:
            if self._proc is not None:
                log.warning("health probe worker %d did not end; killing it", self._proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
            await self._supervisor

    # --- the process ---

    def _send(self, line: bytes) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return  # the next worker gets every wanted check when it starts
        proc.stdin.write(line)

    async def _supervise(self) -> None:
        delay = RESTART_DELAY_S
        while not self._closing:
            started = time.monotonic()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self._argv,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env=_env(),
                    limit=READ_LIMIT,
                    start_new_session=True,  # a Ctrl-C for the daemon is not for it
                )
            except OSError as exc:
                log.error("cannot start the health probe worker: %s", exc)
            else:
                self._proc = proc
                if self._closing:  # closed while it started
                    proc.stdin.close()  # type: ignore[union-attr]
                for key, (check, target) in self._wanted.items():
                    self._send(protocol.start(key, check, target))
                log.debug("health probe worker %d started, %d checks", proc.pid, len(self))
                await self._read(proc)
                code = await proc.wait()
                self._proc = None
                left = kill_session(proc.pid)  # its probes' commands, if it could not
                if self._closing:
                    return
                self.restarts += 1
                log.error(
                    "health probe worker %d exited (%s), %d probe processes killed; "
                    "restarting it with %d checks",
                    proc.pid,
                    f"code {code}" if code >= 0 else f"signal {-code}",
                    left,
                    len(self),
                )
            if time.monotonic() - started > STABLE_S:
                delay = RESTART_DELAY_S
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_DELAY_S)

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            try:
                line = await proc.stdout.readline()
            except ValueError as exc:  # a line over READ_LIMIT: a broken worker
                log.error("health probe worker %d: %s; killing it", proc.pid, exc)
                proc.kill()
                return
            if not line:
                return
            try:
                batch = protocol.read_results(line)
            except protocol.ProtocolError as exc:
                log.error("health probe worker %d: %s", proc.pid, exc)
                continue
            self.results += len(batch)
            for key, result in batch:
                if key in self._wanted:  # else stopped meanwhile: a late result
                    try:
                        self._report(key, result)
                    except Exception:  # a bug there must not stop the reading
                        log.exception("health result of check %d", key)
