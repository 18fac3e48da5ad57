"""Docker's health state machine, driven by a fake clock."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from dnsd.health.state import (
    HEALTHY,
    MAX_LOG_ENTRIES,
    STARTING,
    UNHEALTHY,
    Health,
    Result,
    advance,
    cut_output,
)
from netcore.healthcheck import SECOND, Healthcheck


@dataclass
class FakeClock:
    now: float = 1000.0

    def tick(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def run(check: Healthcheck, codes: list[int], clock: FakeClock, started_at: float) -> list[Health]:
    """Feed one result per interval; the health after each."""
    health, seen = Health(), []
    for code in codes:
        start = clock.tick(check.interval_s)
        health = advance(
            health, Result(start, start + 0.01, code, f"code {code}"), check, started_at
        )
        seen.append(health)
    return seen


def check(**kw) -> Healthcheck:
    return Healthcheck(("TCP", "80"), interval_ns=1 * SECOND, **kw)


def test_starting_until_the_first_success_then_healthy():
    clock = FakeClock()
    seen = run(check(retries=3), [1, 1, 0], clock, clock.now)
    assert [h.status for h in seen] == [STARTING, STARTING, HEALTHY]
    assert [h.failing_streak for h in seen] == [1, 2, 0]


def test_retries_consecutive_failures_make_it_unhealthy_and_one_success_heals():
    clock = FakeClock()
    seen = run(check(retries=3), [0, 1, 1, 0, 1, 1, 1, 0], clock, clock.now)
    assert [h.status for h in seen] == [
        HEALTHY, HEALTHY, HEALTHY, HEALTHY, HEALTHY, HEALTHY, UNHEALTHY, HEALTHY,
    ]  # fmt: skip
    assert seen[6].failing_streak == 3 and seen[7].failing_streak == 0


def test_default_retries_is_three():
    clock = FakeClock()
    seen = run(check(), [1, 1, 1], clock, clock.now)
    assert [h.status for h in seen] == [STARTING, STARTING, UNHEALTHY]


def test_failures_inside_the_start_period_do_not_count():
    clock = FakeClock()
    started = clock.now
    seen = run(check(retries=1, start_period_ns=3 * SECOND + 1), [1, 1, 1, 1], clock, started)
    # Results at +1 s, +2 s, +3 s fall inside the period; +4 s counts and with Retries 1 is final.
    assert [h.status for h in seen] == [STARTING, STARTING, STARTING, UNHEALTHY]
    assert [h.failing_streak for h in seen] == [0, 0, 0, 1]


def test_the_start_period_ends_with_the_first_success():
    clock = FakeClock()
    seen = run(check(retries=1, start_period_ns=60 * SECOND), [0, 1], clock, clock.now)
    assert [h.status for h in seen] == [HEALTHY, UNHEALTHY]


def test_a_timeout_counts_as_a_failure():
    clock = FakeClock()
    seen = run(check(retries=2), [-1, -1], clock, clock.now)
    assert seen[-1].status == UNHEALTHY


@pytest.mark.parametrize("count", [1, MAX_LOG_ENTRIES, MAX_LOG_ENTRIES + 3])
def test_the_log_keeps_the_last_five_results(count):
    clock = FakeClock()
    seen = run(check(), [0] * count, clock, clock.now)
    log = seen[-1].log
    assert len(log) == min(count, MAX_LOG_ENTRIES)
    assert log[-1].start == clock.now and all(a.start < b.start for a, b in itertools.pairwise(log))


def test_output_is_cut_to_4_kib():
    assert len(cut_output(b"x" * 100_000).encode()) == 4096
    assert cut_output(b"ok\n") == "ok\n"
