"""A killed, stopped or starved daemon (issue 6): what the API reported is exactly what exists.

SIGKILL lands in the middle of 100 concurrent connects and disconnects (API calls from threads)
at random points (3 in CI, 20 with `--full`); after each restart the kernel must match the API
with nothing half there, and new addresses must not collide with old ones.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from .harness import HostNamespace, run

pytestmark = pytest.mark.integration

NETWORKS = {"ka": ("10.92.0.0/24", "kbra"), "kb": ("10.93.0.0/24", "kbrb")}
BRIDGES = {"dnsd0", *(bridge for _, bridge in NETWORKS.values())}  # dnsd0: the default network
SANDBOXES = 20
OPERATIONS = 100
SERVING = " serving: api "  # the daemon's start-up is complete
WORKERS = 10  # each owns SANDBOXES / WORKERS sandboxes, so one pair is never raced with itself


@dataclass
class Pair:
    """What the API told us about one (network, sandbox): connected, and at which address."""

    connected: bool = False
    address: str | None = None
    unknown: bool = False  # a call was in flight when the daemon died: either outcome is fine


def restart(host: HostNamespace) -> None:
    """Start the daemon and wait for its "serving" line: /_ping answers while it still
    reconciles and starts the sandboxes' DNS listeners."""
    log = host.tmp / "daemon.log"
    before = log.read_text(errors="replace").count(SERVING) if log.exists() else 0
    host.start_daemon()
    deadline = time.monotonic() + 30
    while log.read_text(errors="replace").count(SERVING) <= before:
        assert time.monotonic() < deadline, f"the daemon never finished starting:\n{host.log()}"
        time.sleep(0.05)


def sandbox_networks(host: HostNamespace, short: str) -> dict[str, dict]:
    return host.ok("GET", f"/sandboxes/{host.sandbox_name(short)}")["Networks"]


def toggle(host: HostNamespace, net: str, short: str, pair: Pair) -> None:
    """Connect or disconnect; raises OSError when the daemon dies under the call."""
    pair.unknown = True
    action = "disconnect" if pair.connected else "connect"
    status, body = host.api(
        "POST", f"/networks/{net}/{action}", {"Container": host.sandbox_name(short)}
    )
    assert status == 200, f"{action} {short} {net}: {status} {body}"
    pair.connected, pair.address = not pair.connected, None
    pair.unknown = False
    if pair.connected:  # reported: the address is part of what the API promised
        pair.address = sandbox_networks(host, short)[net]["IPAddress"]


def churn(host: HostNamespace, pairs: dict, rng: random.Random, kill_after: int) -> int:
    """OPERATIONS toggles from WORKERS threads; SIGKILL once `kill_after` of them returned.

    Returns how many calls were in flight (their outcome unknown) when the daemon died."""
    progress = threading.Semaphore(0)
    errors: list[BaseException] = []
    owned = [[f"s{i}" for i in range(w, SANDBOXES, WORKERS)] for w in range(WORKERS)]
    plans = [
        [(rng.choice(list(NETWORKS)), rng.choice(mine)) for _ in range(OPERATIONS // WORKERS)]
        for mine in owned
    ]

    def worker(plan: list[tuple[str, str]]) -> None:
        left = len(plan)
        try:
            for net, short in plan:
                left -= 1
                try:
                    toggle(host, net, short, pairs[net, short])
                except OSError:
                    return  # the daemon is gone; this pair stays `unknown`
                finally:
                    progress.release()
        except BaseException as exc:
            errors.append(exc)
        finally:
            for _ in range(left):  # never leave the killer waiting for calls nobody makes
                progress.release()

    with ThreadPoolExecutor(WORKERS) as pool:
        for plan in plans:
            pool.submit(worker, plan)
        for _ in range(kill_after):
            assert progress.acquire(timeout=60), f"API calls stalled:\n{host.log()}"
        time.sleep(rng.uniform(0, 0.02))  # anywhere inside the next operations
        host.stop_daemon(signal.SIGKILL)
    if errors:
        raise AssertionError(f"an API call failed before the kill: {errors[0]}\n{host.log()}")
    return sum(p.unknown for p in pairs.values())


def links(host: HostNamespace, *selector: str, netns: str | None = None) -> list[dict]:
    where = ("-n", netns) if netns else ("-n", host.name)
    return json.loads(run("ip", *where, "-j", "-d", "link", "show", *selector).stdout or "[]")


def check_world(host: HostNamespace, pairs: dict[tuple[str, str], Pair]) -> int:
    """The kernel matches the API and the API matches what it reported; returns endpoints."""
    endpoints: dict[str, str] = {}  # endpoint id -> bridge
    for i in range(SANDBOXES):
        short = f"s{i}"
        networks = sandbox_networks(host, short)
        for net in NETWORKS:
            pair = pairs[net, short]
            if not pair.unknown:
                assert (net in networks) == pair.connected, f"{short} on {net}: {networks}"
            if pair.connected and pair.address and not pair.unknown:
                assert networks[net]["IPAddress"] == pair.address, f"{short} moved on {net}"
            pair.connected, pair.unknown = net in networks, False
            pair.address = networks[net]["IPAddress"] if net in networks else None
        name = host.sandbox_name(short)
        inside = {
            a["ifname"]: {i["local"] for i in a["addr_info"] if i["family"] == "inet"}
            for a in json.loads(run("ip", "-n", name, "-j", "addr").stdout)
            if a["ifname"] != "lo"
        }
        expected = {e["InterfaceName"]: {e["IPAddress"]} for e in networks.values()}
        assert inside == expected, f"{short}: kernel {inside} but API {expected}"
        for net, entry in networks.items():
            endpoints[entry["EndpointID"]] = NETWORKS[net][1]
        if networks:  # its resolver answers with every address it has
            got = host.sandbox_exec(
                short, "dig", "+short", "+tries=2", "+time=2", name, check=False
            )
            assert sorted(got.stdout.split()) == sorted(
                e["IPAddress"] for e in networks.values()
            ), (
                f"{short}: 127.0.0.11 answers {got.stdout!r}; nft in it: "
                + run("ip", "netns", "exec", name, "nft", "list", "ruleset").stdout
                + run("ip", "netns", "exec", name, "ss", "-lnu").stdout
            )
        redirect = run("ip", "netns", "exec", name, "nft", "list", "tables").stdout
        assert ("dnsd-dns" in redirect) == bool(networks), f"{short}: redirect {redirect!r}"
    veths = {link["ifname"]: link.get("master") for link in links(host, "type", "veth")}
    owners = {f"veth{eid[:11]}": bridge for eid, bridge in endpoints.items()}
    assert veths == owners, "host veths do not match the endpoints the API reports"
    assert {link["ifname"] for link in links(host, "type", "bridge")} == BRIDGES
    ruleset = host.exec("nft", "list", "ruleset").stdout
    tables = set(re.findall(r"^table (\S+ \S+)", ruleset, re.MULTILINE))
    assert tables == {"inet dnsd", "bridge dnsd"}, tables
    mentioned = set(re.findall(r'"(kbr\w+|dnsd0|br-\w+)"', ruleset))
    assert mentioned == BRIDGES, f"ruleset names bridges {mentioned}"
    listening = host.exec("ss", "-Hlnptu").stdout
    assert f"pid={host.daemon.pid}," not in listening, f"daemon listens in the host:\n{listening}"
    return len(endpoints)


def connect_everything(host: HostNamespace, pairs: dict[tuple[str, str], Pair]) -> None:
    """Connect every free pair: no address may be handed out twice."""
    for (net, short), pair in pairs.items():
        if not pair.connected:
            toggle(host, net, short, pair)
    for net in NETWORKS:
        addresses = [p.address for (n, _), p in pairs.items() if n == net]
        assert len(set(addresses)) == len(addresses) == SANDBOXES, f"{net}: {addresses}"


@pytest.fixture
def world(daemon) -> tuple[HostNamespace, dict[tuple[str, str], Pair]]:
    for net, (subnet, bridge) in NETWORKS.items():
        daemon.network(
            net,
            IPAM={"Config": [{"Subnet": subnet}]},
            Options={"com.docker.network.bridge.name": bridge},
        )
    for i in range(SANDBOXES):
        daemon.sandbox(f"s{i}")
    return daemon, {(net, f"s{i}"): Pair() for net in NETWORKS for i in range(SANDBOXES)}


def test_sigkill_during_concurrent_connects_loses_and_leaks_nothing(world, full):
    host, pairs = world
    seed = secrets.randbits(32)
    rng = random.Random(seed)
    points = 20 if full else 3
    summary = []
    for point in range(points):
        kill_after = rng.randrange(1, OPERATIONS - WORKERS)
        in_flight = churn(host, pairs, rng, kill_after)
        restart(host)
        context = f"(seed {seed}, kill point {point}: after {kill_after} operations)"
        try:
            endpoints = check_world(host, pairs)
        except AssertionError as exc:
            raise AssertionError(f"{exc} {context}\n{host.log()}") from exc
        summary.append(f"{kill_after}/{in_flight}/{endpoints}")
    connect_everything(host, pairs)
    check_world(host, pairs)
    print(
        f"\nissue6 kill: {points} SIGKILL points (seed {seed}; after/in flight/endpoints: "
        f"{', '.join(summary)}); leaked veths, bridges, nft tables, listeners: 0; "
        f"{len(pairs)} addresses unique after reconnecting everything"
    )


def test_sigterm_stops_cleanly_and_sandboxes_keep_their_network(daemon):
    daemon.network("tq", IPAM={"Config": [{"Subnet": "10.94.0.0/24"}]})
    daemon.sandbox("t1", "tq")
    daemon.sandbox("t2", "tq")
    before = daemon.ok("GET", "/networks/tq")["Containers"]
    ruleset = daemon.exec("nft", "list", "ruleset").stdout
    assert daemon.stop_daemon(signal.SIGTERM) == 0, daemon.log()
    assert "dnsd stopping" in daemon.log()
    assert not Path(daemon.socket).exists(), "the API socket was left behind"
    assert daemon.sandbox_exec("t1", "ping", "-c1", "-W2", "10.94.0.3", check=False).returncode == 0
    assert daemon.exec("nft", "list", "ruleset").stdout == ruleset
    restart(daemon)
    assert daemon.ok("GET", "/networks/tq")["Containers"] == before
    out = daemon.sandbox_exec("t1", "dig", "+short", "+tries=2", daemon.sandbox_name("t2"))
    assert out.stdout.split() == ["10.94.0.3"]
    daemon.sandbox("t3", "tq")
    assert sandbox_networks(daemon, "t3")["tq"]["IPAddress"] == "10.94.0.4"


def kernel_state(host: HostNamespace) -> dict[str, str]:
    """Everything a change could touch: host links, addresses, rules, namespaces, sandboxes."""
    state = {
        "links": host.exec("ip", "-br", "link").stdout,
        "addresses": host.exec("ip", "-br", "addr").stdout,
        "rules": host.exec("nft", "list", "ruleset").stdout,
    }
    names = sorted(
        n for n in run("ip", "netns", "list").stdout.split() if n.startswith(host.prefix)
    )
    state["namespaces"] = " ".join(names)
    for name in names:
        state[name] = (
            run("ip", "-n", name, "-br", "addr").stdout
            + run("ip", "netns", "exec", name, "nft", "list", "ruleset").stdout
        )
    return state


def fill(directory: Path) -> Path:
    """Write zeros into `directory` until its file system is full."""
    path = directory / "filler"
    with open(path, "wb") as out:
        try:
            while True:
                out.write(b"\0" * (64 << 10))
                out.flush()
        except OSError:
            pass
    return path


def changes(prefix: str) -> list[tuple[str, str, dict | None]]:
    """One of each kind of kernel change the API makes: (method, path, body)."""
    subnet = {"Config": [{"Subnet": "10.96.0.0/24"}]}
    return [
        ("POST", "/networks/create", {"Name": "nd", "IPAM": subnet}),
        ("POST", "/sandboxes", {"Name": f"{prefix}f3", "NetworkMode": "fa"}),
        ("POST", "/networks/fb/connect", {"Container": f"{prefix}f1"}),
        ("POST", "/networks/fa/disconnect", {"Container": f"{prefix}f2"}),
        ("DELETE", f"/sandboxes/{prefix}f2", None),
        ("DELETE", "/networks/fc", None),
    ]


def test_full_state_disk_refuses_changes_and_leaves_the_kernel_alone(host):
    state = Path(host.state_dir)
    state.mkdir()
    run("mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", f"{host.prefix}state", str(state))
    try:
        host.start_upstream()
        host.start_daemon()
        for net, subnet in (("fa", "10.95.0.0/24"), ("fb", "10.95.1.0/24"), ("fc", "10.95.2.0/24")):
            host.network(net, IPAM={"Config": [{"Subnet": subnet}]})
        host.sandbox("f1", "fa")
        host.sandbox("f2", "fa")
        reported = host.ok("GET", "/sandboxes")
        filler = fill(state)
        for method, path, body in changes(host.prefix):
            before = kernel_state(host)
            status, answer = host.api(method, path, body)
            assert status == 503, f"{method} {path} on a full disk: {status} {answer}"
            assert "state" in answer["message"], answer
            assert kernel_state(host) == before, f"{method} {path} changed the kernel"
        assert host.ok("GET", "/sandboxes") == reported
        filler.unlink()
        host.connect("fb", "f1")  # space again: the same change goes through
        assert sandbox_networks(host, "f1")["fb"]["IPAddress"] == "10.95.1.2"
        host.stop_daemon(signal.SIGKILL)
        restart(host)
        assert sorted(sandbox_networks(host, "f1")) == ["fa", "fb"]
        assert host.sandbox_exec("f1", "ping", "-c1", "-W2", "10.95.0.3").returncode == 0
    finally:
        host.stop_daemon()
        if run("umount", str(state), check=False).returncode != 0:
            run("umount", "-l", str(state), check=False)
