"""Docker's health state machine, pure: results in, status out (no clock, no I/O).

`starting` until the first success; failures inside the start period do not count; `Retries`
consecutive counted failures make it `unhealthy`; one success makes it `healthy` again
(moby daemon/health.go `handleProbeResult`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from netcore.healthcheck import Healthcheck

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
MAX_LOG_ENTRIES = 5  # Docker keeps the last five results
MAX_OUTPUT = 4096  # bytes of a probe's output kept


@dataclass(frozen=True, slots=True)
class Result:
    """One probe run: wall-clock start and end (seconds), exit code (0 healthy, 1 unhealthy,
    -1 could not run or timed out, as Docker), and its output (cut to 4 KiB)."""

    start: float
    end: float
    exit_code: int
    output: str


@dataclass(frozen=True, slots=True)
class Health:
    """A sandbox's health: its status, the consecutive counted failures, the last results."""

    status: str = STARTING
    failing_streak: int = 0
    log: tuple[Result, ...] = ()


def advance(health: Health, result: Result, check: Healthcheck, started_at: float) -> Health:
    """The health after `result`; `started_at` is when the check began (creation or update)."""
    log = (*health.log, result)[-MAX_LOG_ENTRIES:]
    if result.exit_code == 0:
        return Health(HEALTHY, 0, log)
    in_start_period = result.start - started_at < check.start_period_s
    if health.status == STARTING and in_start_period:
        return replace(health, log=log)
    streak = health.failing_streak + 1
    status = UNHEALTHY if streak >= check.effective_retries else health.status
    return Health(status, streak, log)


def cut_output(data: bytes) -> str:
    """A probe's output as text, at most MAX_OUTPUT bytes of it."""
    return data[:MAX_OUTPUT].decode("utf-8", "replace")
