"""`GET /events`: the real `docker events` CLI sees connects and disconnects as they happen and
replays them with --since; the API's since/until/filters; a slow watcher is cut off."""

from __future__ import annotations

import asyncio
import json
import math
import os
import queue
import subprocess
import threading
import time
from typing import Any

import pytest

from dnsd.api.handlers_events import EVENTS_KEY
from dnsd.events.bus import EventBus
from dnsd.events.messages import snapshot_events
from dnsd.events.select import matches, parse_timestamp
from netcore.engine import Engine
from netcore.errors import InvalidArgument
from netcore.requests import ConnectRequest, NetworkRequest, SandboxRequest
from tests.support import snapshots as build
from tests.support.requires import require_binary

DOCKER = require_binary(
    "docker", "apt-get install docker.io", also=("/usr/bin/docker", "/usr/local/bin/docker")
)
FORMAT = "{{json .}}"


def _brief(line: str) -> str:
    """`TYPE ACTION NAME [CONTAINER]` of one event the CLI printed as JSON."""
    event = json.loads(line)
    attributes = event["Actor"]["Attributes"]
    parts = [event["Type"], event["Action"], attributes["name"], attributes.get("container")]
    return " ".join(p for p in parts if p)


@pytest.fixture
def docker_env(served: Any, short_tmp: str) -> dict[str, str]:
    config_dir = os.path.join(short_tmp, "docker-config")
    os.makedirs(config_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    return env | {"DOCKER_HOST": f"unix://{served.socket_path}", "DOCKER_CONFIG": config_dir}


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.put(_brief(line))

    threading.Thread(target=pump, daemon=True).start()
    return out


def _watchers(served: Any) -> int:
    return len(served.app[EVENTS_KEY]._watchers)


def test_docker_events_prints_connect_and_disconnect_as_they_happen_and_since_replays(
    served: Any, engine: Engine, docker_env: dict[str, str]
):
    start = time.time()
    proc = subprocess.Popen(
        [DOCKER, "events", "--filter", "type=network", "--format", FORMAT],
        env=docker_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        lines = _lines(proc)
        deadline = time.monotonic() + 20
        while _watchers(served) == 0:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        net = engine.create_network(NetworkRequest.build("evnet", subnet="10.77.0.0/24"))
        web = engine.create_sandbox(SandboxRequest(name="web"))
        engine.connect("evnet", "web", ConnectRequest(aliases=("api",)))
        assert lines.get(timeout=10) == "network create evnet"
        assert lines.get(timeout=10) == f"network connect evnet {web.id}"  # before disconnect
        engine.disconnect("evnet", "web")
        assert lines.get(timeout=10) == f"network disconnect evnet {web.id}"
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
    deadline = time.monotonic() + 5
    while _watchers(served):  # the stream ends once its client is gone
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # The CLI turns --since/--until into the API's timestamps; both end the replay.
    replay = subprocess.run(
        [DOCKER, "events", "--since", f"{start:.3f}", "--until", f"{time.time():.3f}",
         "--format", FORMAT],
        env=docker_env, capture_output=True, text=True, timeout=30, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert [_brief(line) for line in replay] == [
        "network create evnet",
        "container create web",
        f"network connect evnet {web.id}",
        f"network disconnect evnet {web.id}",
    ]
    assert net.id


def test_filters_since_until_and_health_status(served: Any, engine: Engine, docker_env):
    start = time.time()
    engine.create_network(NetworkRequest.build("fnet", subnet="10.78.0.0/24"))
    box = engine.create_sandbox(SandboxRequest(name="box", network_mode="fnet"))
    bus: EventBus = served.app[EVENTS_KEY]
    bus.loop.call_soon_threadsafe(bus.on_health, box, "unhealthy")
    time.sleep(0.2)
    engine.remove_sandbox("box")

    def events(*args: str) -> list[dict[str, Any]]:
        # Whole milliseconds, rounded outwards: "now" rounded down could miss the last event.
        since, until = math.floor(start * 1000) / 1000, math.ceil(time.time() * 1000) / 1000
        out = subprocess.run(
            [DOCKER, "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
             "--format", "{{json .}}", *args],
            env=docker_env, capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
        return [json.loads(line) for line in out.splitlines()]

    every = events()
    assert [(e["Type"], e["Action"]) for e in every] == [
        ("network", "create"),
        ("container", "create"),
        ("network", "connect"),
        ("container", "health_status: unhealthy"),
        ("network", "disconnect"),
        ("container", "destroy"),
    ]
    health = every[3]
    assert health["status"] == "health_status: unhealthy" and health["id"] == box.id
    assert health["Actor"] == {"ID": box.id, "Attributes": {"name": "box"}}
    assert health["time"] == health["timeNano"] // 10**9
    assert [e["Action"] for e in events("--filter", "event=health_status")] == [
        "health_status: unhealthy"
    ]
    assert [e["Action"] for e in events("--filter", "container=box")] == [
        "create", "health_status: unhealthy", "destroy",
    ]  # fmt: skip
    assert [e["Action"] for e in events("--filter", "network=fnet")] == [
        "create", "connect", "disconnect",
    ]  # fmt: skip
    assert events("--filter", "type=container", "--filter", "event=connect") == []


def test_timestamps_are_docker_s_form():
    assert parse_timestamp("1700000000", "since") == 1700000000 * 10**9
    assert parse_timestamp("1700000000.5", "since") == 1700000000_500000000
    assert parse_timestamp("1700000000.000000001", "until") == 1700000000_000000001
    assert parse_timestamp(None, "since") is None
    with pytest.raises(InvalidArgument, match=r"^since:"):
        parse_timestamp("yesterday", "since")


def test_snapshot_diff_and_container_filter_by_id_prefix():
    net = build.network("ab".ljust(64, "0"), "n", "br0", "10.1.0.0/24")
    box = build.sandbox("cd".ljust(64, "0"), "b")
    ep = build.endpoint("ef".ljust(64, "0"), net, box.id, 5)
    empty = build.snapshot([], [], [], revision=1)
    full = build.snapshot([net], [box], [ep], revision=2)
    came = snapshot_events(empty, full, 7)
    assert [(e["Type"], e["Action"]) for e in came] == [
        ("network", "create"), ("container", "create"), ("network", "connect"),
    ]  # fmt: skip
    went = snapshot_events(full, empty, 8)
    assert [(e["Type"], e["Action"]) for e in went] == [
        ("network", "disconnect"), ("container", "destroy"), ("network", "destroy"),
    ]  # fmt: skip
    assert all(matches(e, {"container": ["cd"]}) for e in came[1:])
    assert not matches(came[0], {"container": ["cd"]})


def test_a_slow_watcher_is_cut_off_with_an_error_line_and_the_ring_keeps_1000():
    async def scenario() -> None:
        bus = EventBus(asyncio.get_running_loop(), queue_size=10)
        watcher = bus.watch(None)
        box = build.sandbox("cd".ljust(64, "0"), "b")
        for _ in range(1500):
            bus.on_health(box, "healthy")
        await asyncio.sleep(0.05)
        assert watcher.dropped and watcher.queue.qsize() == 10
        assert bus.dropped_watchers == 1
        assert len(bus.watch(0).replay) == 1500

    asyncio.run(scenario())
