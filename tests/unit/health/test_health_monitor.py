"""The scheduler with a scripted probe: statuses follow results, changes reach the DNS side
(coalesced) and the event callback, and removed sandboxes stop being probed."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from dnsd.health.monitor import HealthMonitor, targets
from dnsd.health.probes import Target
from dnsd.health.state import Result
from netcore.healthcheck import MS, Healthcheck
from netcore.model import Snapshot
from tests.support import snapshots as build

CHECK = Healthcheck(("TCP", "80"), interval_ns=100 * MS, retries=1)


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
            loop, changes.append, lambda s, status: events.append((s.name, status)), probe=probe
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
        monitor = HealthMonitor(asyncio.get_running_loop(), lambda s: None, probe=probe)
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
