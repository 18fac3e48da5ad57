"""Names from the host (issue 15): `--host-dns` answered with dig in the daemon's namespace, the
`--host-hosts-file`, bad flags, Docker's links in real sandboxes, and systemd-resolved where it
can run in the test namespace."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from .harness import UPSTREAM, HostNamespace, run
from .probes import dig, dig_short

pytestmark = pytest.mark.integration

HOST_DNS = "127.0.0.153"
SUBNET, GATEWAY = "10.93.0.0/24", "10.93.0.1"


def host_dig(h: HostNamespace, *args: str, server: str = HOST_DNS) -> str:
    """dig in the daemon's own namespace (where the host listener is)."""
    cmd = ["dig", "+tries=1", "+time=3", f"@{server}", *args]
    return h.exec(*cmd, check=False, timeout=30).stdout


def host_short(h: HostNamespace, *args: str, server: str = HOST_DNS) -> list[str]:
    return sorted(host_dig(h, "+short", *args, server=server).split())


@pytest.fixture
def hostdns(host, tmp_path):
    host.start_upstream()
    host.start_daemon("--host-dns", HOST_DNS, "--host-hosts-file", str(tmp_path / "host.hosts"))
    host.network("app", IPAM={"Config": [{"Subnet": SUBNET}]})
    host.sandbox("web", "app", EndpointConfig={"Aliases": ["www"]})
    host.sandbox("cli", "app")
    return host


def test_host_dns_answers_names_ptr_and_tcp(hostdns):
    h = hostdns
    web = h.sandbox_name("web")
    assert host_short(h, f"{web}.app") == ["10.93.0.2"]
    assert host_short(h, "www.app") == ["10.93.0.2"]
    assert host_short(h, f"{web}.APP.") == ["10.93.0.2"]
    assert host_short(h, web) == ["10.93.0.2"]  # a bare name on one network only
    assert host_short(h, "+tcp", f"{h.sandbox_name('cli')}.app") == ["10.93.0.3"]
    assert host_short(h, "-x", "10.93.0.2") == [f"{web}.app."]
    assert "status: NXDOMAIN" in host_dig(h, "nobody.app")


def test_host_dns_refuses_and_never_forwards(hostdns):
    h = hostdns
    for name in ("example.com", "www.example.test"):  # (ext.anchors.test: the start probe)
        out = host_dig(h, name)
        assert "status: REFUSED" in out, out
        assert not h.upstream_saw(UPSTREAM, name)
    # The sandboxes still forward the same names: the upstream is there.
    assert dig_short(h, "cli", "www.example.test") == ["198.51.100.201"]


def test_removed_sandbox_stops_answering_at_once(hostdns):
    h = hostdns
    name = f"{h.sandbox_name('web')}.app"
    assert host_short(h, name) == ["10.93.0.2"]
    h.ok("DELETE", f"/sandboxes/{h.sandbox_name('web')}")
    assert "status: NXDOMAIN" in host_dig(h, name)  # the API answered: the name is gone


def test_ambiguous_bare_name_is_nxdomain_with_one_log_line(hostdns):
    h = hostdns
    h.network("other", IPAM={"Config": [{"Subnet": "10.94.0.0/24"}]})
    h.sandbox("far", "other", EndpointConfig={"Aliases": ["www"]})
    for _ in range(3):
        assert "status: NXDOMAIN" in host_dig(h, "www")
    assert host_short(h, "www.other") == ["10.94.0.2"]
    assert h.log().count("www is a name on several networks") == 1


def test_gateway_listener_and_resolved_absent(host, tmp_path):
    host.start_upstream()
    host.start_daemon()
    host.network("app", IPAM={"Config": [{"Subnet": SUBNET}]})
    host.sandbox("web", "app")
    assert host.stop_daemon() == 0
    # The bridge keeps its gateway address while the daemon is down: bind to it on restart.
    bus = f"unix:path={tmp_path / 'no-bus'}"  # never the host's real system bus
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus}
    _start_with_env(host, env, "--host-dns", GATEWAY)
    assert host_short(host, f"{host.sandbox_name('web')}.app", server=GATEWAY) == ["10.93.0.2"]
    # a sandbox reaches the gateway too, but the host listener answers the host only
    asked = host.sandbox_exec(
        "web", "dig", "+time=1", "+tries=1", f"@{GATEWAY}", f"{host.sandbox_name('web')}.app"
    ).stdout
    assert "status: REFUSED" in asked and "ANSWER SECTION" not in asked, asked
    assert host.log().count("systemd-resolved is not running") == 1


def test_gateway_listener_follows_a_network_removed_and_created_again(host, tmp_path):
    """The gateway address goes with its network and comes back with a new one on the same
    subnet: the listener bound to it at start answers the new network's names, no restart."""
    host.start_upstream()
    host.start_daemon()
    host.network("app", IPAM={"Config": [{"Subnet": SUBNET}]})
    assert host.stop_daemon() == 0
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path / 'no-bus'}"}
    _start_with_env(host, env, "--host-dns", GATEWAY)
    host.ok("DELETE", "/networks/app")
    assert GATEWAY not in host.exec("ip", "-br", "addr").stdout  # gone with its bridge
    host.network("again", IPAM={"Config": [{"Subnet": SUBNET}]})
    host.sandbox("new", "again")
    assert host_short(host, f"{host.sandbox_name('new')}.again", server=GATEWAY) == ["10.93.0.2"]
    assert "status: REFUSED" in host_dig(host, "web.app", server=GATEWAY)


def _start_with_env(h: HostNamespace, env: dict[str, str], *args: str) -> None:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        h.start_daemon(*args)
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("127.0.0.11", "reserved for the sandboxes"),
        ("192.0.2.99", "192.0.2.99 is not an address of this host"),
        (UPSTREAM, "UDP port 53 is in use on 198.51.100.53"),  # the fake upstream holds it
    ],
)
def test_bad_host_dns_exits_1_naming_the_flag(host, flag, message):
    host.start_upstream()
    proc = run(*host.daemon_argv("--host-dns", flag), check=False, timeout=60)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "--host-dns" in output and message in output, output


def test_host_hosts_file_after_connect_disconnect_and_restart(hostdns, tmp_path):
    h = hostdns
    path = tmp_path / "host.hosts"
    web, cli = h.sandbox_name("web"), h.sandbox_name("cli")
    assert f"10.93.0.2\t{web}.app www.app " in path.read_text()
    h.network("db", IPAM={"Config": [{"Subnet": "10.95.0.0/24"}]})
    h.connect("db", "cli", Aliases=["store"])
    text = path.read_text()
    assert f"10.95.0.2\t{cli}.db store.db " in text and f"10.93.0.3\t{cli}.app" in text
    h.ok("POST", "/networks/db/disconnect", {"Container": cli})
    assert "10.95.0.2" not in path.read_text() and f"{cli}.app" in path.read_text()
    assert h.stop_daemon() == 0
    path.unlink()
    h.start_daemon("--host-dns", HOST_DNS, "--host-hosts-file", str(path))
    text = path.read_text()
    assert f"10.93.0.2\t{web}.app" in text and f"10.93.0.3\t{cli}.app" in text
    assert "10.95.0.2" not in text


def test_links_resolve_only_for_the_linking_sandbox(daemon):
    h = daemon
    h.network("app", IPAM={"Config": [{"Subnet": "10.96.0.0/24"}]})
    h.sandbox("web", "app")
    h.sandbox("cli", "app", EndpointConfig={"Links": [f"{h.sandbox_name('web')}:db"]})
    h.sandbox("other", "app")
    assert dig_short(h, "cli", "db") == ["10.96.0.2"]
    assert "status: NXDOMAIN" in dig(h, "other", "db")  # forwarded: the upstream says no
    shape = h.ok("GET", f"/sandboxes/{h.sandbox_name('cli')}")
    assert shape["Networks"]["app"]["Links"] == [f"{h.sandbox_name('web')}:db"]


def test_link_on_the_default_bridge_writes_the_hosts_file(daemon):
    h = daemon
    h.sandbox("db", "bridge", Hostname="dbhost")
    # Through the command line, as people use it.
    argv = [
        sys.executable, "-m", "dnsd", "sandbox", "create", "--api-socket", h.socket,
        "--network", "bridge", "--link", f"{h.sandbox_name('db')}:database",
        h.sandbox_name("app"),
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    db_ip = h.ok("GET", f"/sandboxes/{h.sandbox_name('db')}")["Networks"]["bridge"]["IPAddress"]
    got = h.sandbox_exec("app", "getent", "hosts", "database").stdout.split()
    assert got[:3] == [db_ip, "database", "dbhost"] and h.sandbox_name("db") in got
    assert dig_short(h, "app", "database") == [db_ip]
    bad = subprocess.run(
        [*argv[:-3], "--link", "nosuch:x", h.sandbox_name("bad")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 1 and "nosuch" in bad.stderr


RESOLVED_PATHS = ("/lib/systemd/systemd-resolved", "/usr/lib/systemd/systemd-resolved")


def test_systemd_resolved_routes_network_names(host, tmp_path):
    resolved = next((p for p in RESOLVED_PATHS if os.access(p, os.X_OK)), None)
    if resolved is None:
        pytest.skip(
            "systemd-resolved is not installed (no /lib/systemd/systemd-resolved): the package "
            "replaces the machine's /etc/resolv.conf when installed, so this image leaves it "
            "out; the calls dnsd makes are unit-tested in tests/unit/dnsd/test_hostdns_resolved.py"
        )
    for tool in ("dbus-daemon", "busctl", "resolvectl", "unshare"):
        if not any(os.access(os.path.join(d, tool), os.X_OK) for d in os.defpath.split(":")):
            pytest.skip(f"systemd-resolved is installed but {tool} is not")
    bus = _private_bus(host, tmp_path)
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus}
    # resolved in the test namespace, on the private bus, with a private /run/systemd.
    script = "mount -t tmpfs tmpfs /run/systemd && exec " + resolved
    proc = subprocess.Popen(
        ["nsenter", f"--net={host.path}", "unshare", "--mount", "--propagation", "private",
         "sh", "-c", script],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    host.extra.append(proc)
    if not _wait_for_name(host, env, "org.freedesktop.resolve1"):
        pytest.skip("systemd-resolved did not come up on a private bus in the test namespace")
    host.start_upstream()
    _start_with_env(host, env)
    host.network("app", IPAM={"Config": [{"Subnet": SUBNET}]})
    host.sandbox("web", "app")
    bridge = host.ok("GET", "/networks/app")["Options"].get("com.docker.network.bridge.name")
    assert host.stop_daemon() == 0
    _start_with_env(host, env, "--host-dns", GATEWAY)
    assert "systemd-resolved found" in host.log()
    link = bridge or _bridge_of(host, "app")
    status = run("nsenter", f"--net={host.path}", "resolvectl", "--no-pager", "status", link,
                 env=env, check=False).stdout  # fmt: skip
    assert GATEWAY in status and "~app" in status, status
    query = run("nsenter", f"--net={host.path}", "resolvectl", "query",
                f"{host.sandbox_name('web')}.app", env=env, check=False)  # fmt: skip
    assert "10.93.0.2" in query.stdout, query.stdout + query.stderr


def _private_bus(h: HostNamespace, tmp) -> str:
    socket_path = tmp / "system_bus_socket"
    config = tmp / "bus.conf"
    config.write_text(
        '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" '
        '"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
        f"<busconfig><type>system</type><listen>unix:path={socket_path}</listen>"
        '<auth>EXTERNAL</auth><policy context="default"><allow user="*"/>'
        '<allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/>'
        "</policy></busconfig>\n"
    )
    proc = subprocess.Popen(
        ["nsenter", f"--net={h.path}", "dbus-daemon", f"--config-file={config}", "--nofork",
         "--nopidfile"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    h.extra.append(proc)
    deadline = time.monotonic() + 10
    while not socket_path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return f"unix:path={socket_path}"


def _wait_for_name(h: HostNamespace, env: dict[str, str], name: str) -> bool:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        out = run("nsenter", f"--net={h.path}", "busctl", "call", "org.freedesktop.DBus",
                  "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", "s", name,
                  env=env, check=False).stdout  # fmt: skip
        if out.split() == ["b", "true"]:
            return True
        time.sleep(0.2)
    return False


def _bridge_of(h: HostNamespace, network: str) -> str:
    net_id = h.ok("GET", f"/networks/{network}")["Id"]
    return f"br-{net_id[:12]}"
