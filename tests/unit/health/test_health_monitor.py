"""The monitor with the scheduler in-process and a scripted probe: statuses follow results,
changes reach the DNS side (coalesced) and the event callback, and removed sandboxes stop being
probed; what it tells its prober, and late results of a stopped check."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from ipaddress import ip_address

from dnsd.health.monitor import HealthMonitor, targets
from dnsd.health.probes import Target
from dnsd.health.scheduler import Probe, Report, Scheduler
from dnsd.health.state import Result
from netcore.healthcheck import MS, Healthcheck
from netcore.model import Snapshot
from tests.support import snapshots as build

CHECK = Healthcheck(("TCP", "80"), interval_ns=100 * MS, retries=1)


def in_process(probe: Probe):
    return lambda report: Scheduler(report, probe=probe)


def _snapshot(*checks: Healthcheck | None) -> Snapshot:
    net = build.network("ee".ljust(64, "0"), "app", "br0", "10.5.0.0/24")
    sandboxes = [
        build.sandbox(f"5{i}".ljust(64, "0"), f"s{i}", healthcheck=check)
        for i, check in enumerate(checks)
    ]
    endpoints = [
        build.endpoint(f"e{i}".ljust(64, "0"), net, s.id, 10 + i, host_ifname=f"v{i}")
        for i, s in enumerate(sandboxes)
    ]
    return build.snapshot([net], sandboxes, endpoints, revision=1)


def test_targets_are_the_sandboxes_with_an_enabled_check_and_their_address():
    snapshot = _snapshot(CHECK, None, Healthcheck(("NONE",)))
    found = targets(snapshot)
    assert list(found) == [snapshot.sandboxes[0].id]
    assert found[snapshot.sandboxes[0].id][1] == Target("/x", "10.5.0.10")


def test_statuses_follow_results_and_changes_are_reported():
    outcome = {"10.5.0.10": 0, "10.5.0.11": 0}
    probed: list[str] = []
    changes: list[dict[str, str]] = []
    events: list[tuple[str, str]] = []

    async def probe(check: Healthcheck, target: Target) -> Result:
        probed.append(target.address or "")
        return Result(0.0, 0.0, outcome[target.address or ""], "scripted")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        monitor = HealthMonitor(
            loop,
            changes.append,
            lambda s, status: events.append((s.name, status)),
            prober=in_process(probe),
        )
        snapshot = _snapshot(CHECK, CHECK)
        monitor.apply(snapshot)
        assert monitor.statuses() == {s.id: "starting" for s in snapshot.sandboxes}
        await asyncio.sleep(0.4)
        assert set(monitor.statuses().values()) == {"healthy"}
        outcome["10.5.0.11"] = 1
        await asyncio.sleep(0.25)
        assert monitor.statuses()[snapshot.sandboxes[1].id] == "unhealthy"
        assert changes[-1][snapshot.sandboxes[1].id] == "unhealthy"
        assert ("s1", "unhealthy") in events and ("s0", "unhealthy") not in events
        health = monitor.health(snapshot.sandboxes[1].id)
        assert health is not None and health.failing_streak >= 1 and health.log
        # Removing the check stops its probes and drops its status.
        monitor.apply(replace(snapshot, sandboxes=(snapshot.sandboxes[0],)))
        await asyncio.sleep(0.05)
        count = probed.count("10.5.0.11")
        await asyncio.sleep(0.3)
        assert probed.count("10.5.0.11") == count
        assert list(monitor.statuses()) == [snapshot.sandboxes[0].id]
        assert snapshot.sandboxes[1].id not in changes[-1]
        await monitor.close()

    asyncio.run(scenario())
    assert sorted(events[:2]) == [("s0", "healthy"), ("s1", "healthy")]


def test_a_changed_check_starts_over():
    async def probe(check: Healthcheck, target: Target) -> Result:
        return Result(0.0, 0.0, 0, "ok")

    async def scenario() -> None:
        monitor = HealthMonitor(
            asyncio.get_running_loop(), lambda s: None, prober=in_process(probe)
        )
        snapshot = _snapshot(CHECK)
        monitor.apply(snapshot)
        await asyncio.sleep(0.3)
        sid = snapshot.sandboxes[0].id
        assert monitor.statuses()[sid] == "healthy"
        other = replace(snapshot.sandboxes[0], healthcheck=replace(CHECK, test=("TCP", "81")))
        monitor.apply(replace(snapshot, sandboxes=(other,)))
        assert monitor.statuses()[sid] == "starting"
        await asyncio.sleep(0.3)  # the new check probes its target too
        assert monitor.statuses()[sid] == "healthy"
        await monitor.close()

    asyncio.run(scenario())


class Recorder:
    """A prober that only records what it is told."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.calls: list[tuple] = []

    def start(self, key: int, check: Healthcheck, target: Target) -> None:
        self.calls.append(("start", key, check.test, target.address))

    def retarget(self, key: int, target: Target) -> None:
        self.calls.append(("retarget", key, target.address))

    def stop(self, key: int) -> None:
        self.calls.append(("stop", key))

    async def close(self) -> None:
        self.calls.append(("close",))


def test_the_prober_is_told_start_retarget_stop_and_late_results_are_dropped():
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        monitor = HealthMonitor(loop, lambda s: None, prober=Recorder, now=lambda: 0.0)
        prober = monitor.prober
        assert isinstance(prober, Recorder)
        snapshot = _snapshot(CHECK)
        sid = snapshot.sandboxes[0].id
        monitor.apply(snapshot)
        monitor.apply(snapshot)  # nothing changed: nothing said
        moved = replace(
            snapshot, endpoints=(replace(snapshot.endpoints[0], ipv4=ip_address("10.5.0.99")),)
        )
        monitor.apply(moved)
        assert prober.calls == [
            ("start", 1, ("TCP", "80"), "10.5.0.10"),
            ("retarget", 1, "10.5.0.99"),
        ]
        prober.report(1, Result(1.0, 1.0, 0, "ok"))
        assert monitor.statuses() == {sid: "healthy"}
        # A changed check starts over under a new key; a result of the old one is late.
        other = replace(snapshot.sandboxes[0], healthcheck=replace(CHECK, test=("TCP", "81")))
        monitor.apply(replace(moved, sandboxes=(other,)))
        assert prober.calls[2:] == [("stop", 1), ("start", 2, ("TCP", "81"), "10.5.0.99")]
        prober.report(1, Result(2.0, 2.0, 0, "late"))
        assert monitor.statuses() == {sid: "starting"} and monitor.probes_run == 1
        prober.report(2, Result(3.0, 3.0, 1, "refused"))
        assert monitor.statuses() == {sid: "unhealthy"} and monitor.counts() == {"unhealthy": 1}
        await monitor.close()
        assert prober.calls[-2:] == [("stop", 2), ("close",)]

    asyncio.run(scenario())
