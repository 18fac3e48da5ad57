"""Health checks in real sandboxes: an HTTP check per member of alias `api` against a server the
test runs inside each one; `dig api` follows their health, `tasks.api` always has all three;
a CMD check runs inside the sandbox's namespace as nobody (issue 14)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from dnsd.health.shape import rfc3339_nano

from .harness import HostNamespace
from .probes import dig_short

pytestmark = pytest.mark.integration

INTERVAL_S = 1.0
SECOND = 1_000_000_000
CHECK = {
    "Test": ["HTTP", "8000", "/"],
    "Interval": int(INTERVAL_S * SECOND),
    "Timeout": SECOND // 2,
    "Retries": 1,
}
MEMBERS = ("a1", "a2", "a3")


def _serve(h: HostNamespace, short: str, address: str) -> subprocess.Popen:
    """`python3 -m http.server` inside the sandbox, bound to its address (removed at cleanup)."""
    proc = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{h.sandbox_name(short)}", sys.executable, "-m",
         "http.server", "8000", "--bind", address],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/",
    )  # fmt: skip
    h.extra.append(proc)
    deadline = time.monotonic() + 20
    while True:  # listening (python's start-up is slow on a busy machine: not ours to time)
        netns = f"--net=/run/netns/{h.sandbox_name(short)}"
        out = subprocess.run(
            ["nsenter", netns, "ss", "-Hltn", "sport = :8000"],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        if ":8000" in out:
            return proc
        assert time.monotonic() < deadline and proc.poll() is None, "http.server did not start"
        time.sleep(0.05)


def _wait_for(h: HostNamespace, want: list[str], name: str = "api", limit: float = 10) -> float:
    """Seconds until `dig NAME` from the client sandbox answers exactly `want`."""
    start = time.monotonic()
    while True:
        got = dig_short(h, "cli", name)
        if got == want:
            return time.monotonic() - start
        assert time.monotonic() - start < limit, f"{name}: {got}, want {want}\n{h.log()}"
        time.sleep(0.05)


def test_dig_follows_health_and_tasks_answers_everyone(daemon):
    h = daemon
    h.network("hnet", IPAM={"Config": [{"Subnet": "10.91.0.0/24"}]})
    h.sandbox("cli", "hnet")
    addresses, servers = {}, {}
    for short in MEMBERS:
        h.sandbox(short, Healthcheck=CHECK)
        h.connect("hnet", short, Aliases=["api"])
        sandbox = h.ok("GET", f"/sandboxes/{h.sandbox_name(short)}")
        addresses[short] = sandbox["Networks"]["hnet"]["IPAddress"]
    everyone = sorted(addresses.values())
    # Nobody healthy yet (starting): everyone answers until the servers are up.
    assert dig_short(h, "cli", "api") == everyone
    for short in MEMBERS:
        servers[short] = _serve(h, short, addresses[short])
    _wait_for(h, everyone)
    deadline = time.monotonic() + 10
    while any(_status(h, s) != "healthy" for s in MEMBERS):
        assert time.monotonic() < deadline, [_status(h, s) for s in MEMBERS]
        time.sleep(0.1)

    servers["a1"].terminate()
    servers["a1"].wait(5)
    gone = _wait_for(h, sorted(addresses[s] for s in ("a2", "a3")))
    assert gone < 2 * INTERVAL_S, gone
    assert dig_short(h, "cli", "tasks.api") == everyone
    health = h.ok("GET", f"/sandboxes/{h.sandbox_name('a1')}")["State"]["Health"]
    assert health["Status"] == "unhealthy" and health["FailingStreak"] >= 1
    assert health["Log"][-1]["ExitCode"] == 1 and "Refused" in health["Log"][-1]["Output"]

    servers["a1"] = _serve(h, "a1", addresses["a1"])
    back = _wait_for(h, everyone)
    assert back < 2 * INTERVAL_S, back
    assert "\ndnsd_health_fail_open_names 0.0\n" in _metrics(h)

    for short in MEMBERS:
        servers[short].terminate()
        servers[short].wait(5)
    deadline = time.monotonic() + 3 * INTERVAL_S
    while any(_status(h, s) != "unhealthy" for s in MEMBERS):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert dig_short(h, "cli", "api") == everyone  # nobody fit: fail open, not NXDOMAIN
    assert dig_short(h, "cli", "tasks.api") == everyone
    # ... and counted: `api` and `api.hnet`
    assert "\ndnsd_health_fail_open_names 2.0\n" in _metrics(h)
    assert h.ok("GET", "/info")["Dnsd"]["Health"]["FailOpenNames"] == 2
    print(f"\nhealth change to answer: removed after {gone:.2f}s, back after {back:.2f}s")

    # Each change was an event.
    status, text = h.api("GET", f"/events?since=0&until={time.time():.3f}")
    assert status == 200
    assert text.count('"Action":"health_status: unhealthy"') >= 4
    assert text.count('"Action":"health_status: healthy"') >= 4


def _metrics(h: HostNamespace) -> str:
    status, text = h.api("GET", "/metrics")
    assert status == 200 and isinstance(text, str), (status, text)
    return text


def _status(h: HostNamespace, short: str) -> str | None:
    health = h.ok("GET", f"/sandboxes/{h.sandbox_name(short)}")["State"]["Health"]
    return None if health is None else health["Status"]


def test_cmd_check_runs_inside_the_sandbox_as_nobody(daemon):
    h = daemon
    h.network("cnet", IPAM={"Config": [{"Subnet": "10.92.0.0/24"}]})
    check = {
        "Test": ["CMD", "sh", "-c", "id -u; ip -4 -o addr show eth0"],
        "Interval": SECOND // 5,
    }
    sandbox = h.sandbox("box", "cnet", Healthcheck=check)
    address = sandbox["Networks"]["cnet"]["IPAddress"]
    deadline = time.monotonic() + 10
    while _status(h, "box") != "healthy":
        assert time.monotonic() < deadline, h.ok("GET", f"/sandboxes/{h.sandbox_name('box')}")
        time.sleep(0.1)
    output = h.ok("GET", f"/sandboxes/{h.sandbox_name('box')}")["State"]["Health"]["Log"][-1]
    uid, link = output["Output"].split("\n", 1)
    assert uid == "65534"  # nobody
    assert "eth0" in link and f"inet {address}/" in link  # the sandbox's eth0, not the host's
    assert h.exec("ip", "link", "show", "eth0", check=False).returncode != 0

    # A hanging command is killed at its timeout and leaves no process behind; removing the
    # sandbox mid-check does not either.
    hang = {"Test": ["CMD-SHELL", "sleep 30"], "Interval": SECOND // 5, "Timeout": SECOND // 5}
    h.ok("POST", f"/sandboxes/{h.sandbox_name('box')}/update", {"Healthcheck": hang})
    deadline = time.monotonic() + 10
    while True:
        log = h.ok("GET", f"/sandboxes/{h.sandbox_name('box')}")["State"]["Health"]["Log"]
        if log and "exceeded timeout" in log[-1]["Output"]:
            break
        assert time.monotonic() < deadline, log
        time.sleep(0.1)
    assert len(_sleepers()) <= 1  # at most the probe running right now

    # The probes run in a worker process: killed mid-probe, it is restarted (and logged), its
    # command is killed with it, and the new worker runs the check.
    while not (running := _sleepers()):
        time.sleep(0.02)
    health = h.ok("GET", "/info")["Dnsd"]["Health"]
    assert health["WorkerRestarts"] == 0
    os.kill(health["WorkerPid"], signal.SIGKILL)
    killed_at = time.time()
    deadline = time.monotonic() + 10
    while (now := h.ok("GET", "/info")["Dnsd"]["Health"])["WorkerPid"] in (
        None,
        health["WorkerPid"],
    ):
        assert time.monotonic() < deadline, now
        time.sleep(0.05)
    assert now["WorkerRestarts"] == 1
    assert not running & _sleepers(), "the dead worker's command is still running"
    while True:
        log = h.ok("GET", f"/sandboxes/{h.sandbox_name('box')}")["State"]["Health"]["Log"]
        if log and log[-1]["Start"] > rfc3339_nano(killed_at):
            break
        assert time.monotonic() < deadline + 10, log
        time.sleep(0.1)
    assert "exited (signal 9)" in h.log()

    h.ok("DELETE", f"/sandboxes/{h.sandbox_name('box')}")
    time.sleep(0.5)
    assert not _sleepers()


def _sleepers() -> set[int]:
    """Processes running `sleep 30` (only our hanging check runs that)."""
    out = subprocess.run(["pgrep", "-f", "-x", "sleep 30"], capture_output=True, text=True)
    return {int(pid) for pid in out.stdout.split()}
