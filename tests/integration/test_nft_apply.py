"""nft scripts applied for real, each test inside fresh network namespaces it creates and deletes.

Needs root and ip/nft/nsenter (skips without them, fails in CI: see conftest.py). Never touches
the machine's own namespace: every `nft` runs through
`NftCli(...).apply(script, netns=/run/netns/<unique>)` or `ip netns exec <unique>`.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from netcore.errors import NftError
from netcore.model import Network, PortBinding, Subnet4
from netcore.nft import NftCli, PublishedPort, render_dns_redirect, render_host_ruleset
from tests.support.requires import kernel_lacks

pytestmark = pytest.mark.integration  # root and ip/nft/nsenter: gated by conftest.py

GOLDEN_DIR = Path(__file__).parents[1] / "unit" / "netcore" / "golden" / "nft"
GOLDENS = sorted(GOLDEN_DIR.glob("*.nft"))
CLI = NftCli()
TEARDOWN_OF = {"host_teardown": "icc_off.nft", "redirect_teardown": "redirect.nft"}


def sh(*argv: str, check: bool = True) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


@contextmanager
def namespace(label: str) -> Iterator[str]:
    """A fresh named netns with lo up; deleted on exit whatever happened."""
    name = f"dnsd-t-{label}-{os.getpid()}-{secrets.token_hex(3)}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


@pytest.fixture
def ns() -> Iterator[str]:
    with namespace("nft") as name:
        yield name


def path(name: str) -> str:
    return f"/run/netns/{name}"


def nft(name: str, *args: str) -> str:
    return sh("ip", "netns", "exec", name, "nft", *args)


def script_rules(script: str) -> dict[str, list[str]]:
    """`add rule FAMILY TABLE CHAIN RULE` lines grouped by 'FAMILY TABLE CHAIN', in order."""
    rules: dict[str, list[str]] = {}
    for line in script.splitlines():
        if line.startswith("add chain ") and " user" not in line:
            rules.setdefault(" ".join(line.split()[2:5]), [])
        if line.startswith("add rule "):
            words = line.split(" ", 5)
            rules.setdefault(" ".join(words[2:5]), []).append(words[5])
    return rules


def listed_rules(name: str, chain: str) -> list[str]:
    """The rules of one chain as `nft list` prints them (header, hook spec and braces dropped)."""
    lines = [ln.strip() for ln in nft(name, "list", "chain", *chain.split()).splitlines()]
    return [ln for ln in lines if ln and not ln.startswith(("table ", "chain ", "type ", "}"))]


def tables(name: str) -> list[str]:
    return [ln.removeprefix("table ") for ln in nft(name, "list", "tables").splitlines()]


# --- every golden, for real ---


@pytest.mark.parametrize("golden", GOLDENS, ids=[g.stem for g in GOLDENS])
def test_golden_applies_idempotently_and_lists_back_verbatim(ns: str, golden: Path) -> None:
    script = golden.read_text()
    if "ibrname" in script and not CLI.supports_bridge_meta(path(ns)):
        kernel_lacks(
            "nft_meta_bridge, for `meta ibrname`",
            "CONFIG_NFT_BRIDGE_META",
            f"{golden.name} cannot load here; its rendering is checked by the unit goldens",
        )
    if golden.stem in TEARDOWN_OF:  # a teardown: first make what it tears down
        CLI.apply((GOLDEN_DIR / TEARDOWN_OF[golden.stem]).read_text(), netns=path(ns))
        doomed = [ln.removeprefix("delete table ") for ln in script.splitlines() if "delete" in ln]
        assert set(doomed) <= set(tables(ns))
        for _ in range(2):  # also fine when the tables are already gone
            CLI.apply(script, netns=path(ns))
            assert not set(doomed) & set(tables(ns))
        return
    for _ in range(2):  # the second apply must change nothing
        CLI.apply(script, netns=path(ns))
        for chain, rules in script_rules(script).items():
            assert listed_rules(ns, chain) == rules, chain


def test_user_chain_survives_every_reapply(ns: str) -> None:
    CLI.apply((GOLDEN_DIR / "published.nft").read_text(), netns=path(ns))
    nft(ns, "add", "rule", "inet", "dnsd", "user", "iifname", "eth9", "drop")
    for case in ("two_networks", "empty", "published"):
        CLI.apply((GOLDEN_DIR / f"{case}.nft").read_text(), netns=path(ns))
        assert listed_rules(ns, "inet dnsd user") == ['iifname "eth9" drop']
        assert listed_rules(ns, "inet dnsd forward")[0] == "jump user"


def test_removed_network_leaves_nothing(ns: str) -> None:
    CLI.apply((GOLDEN_DIR / "published.nft").read_text(), netns=path(ns))
    CLI.apply((GOLDEN_DIR / "icc_off.nft").read_text(), netns=path(ns))
    CLI.apply((GOLDEN_DIR / "empty.nft").read_text(), netns=path(ns))
    ruleset = nft(ns, "list", "ruleset")
    for trace in ("br-", "172.", "dnat", "masquerade", "drop"):
        assert trace not in ruleset


BAD = "add table inet dnsd-bad\nadd chain inet dnsd-bad c\nadd rule inet dnsd-bad c {rule}\n"


@pytest.mark.parametrize("rule", ["frobnicate now", "jump nowhere"])  # parser, then kernel
def test_refused_script_raises_with_its_line_and_changes_nothing(ns: str, rule: str) -> None:
    with pytest.raises(NftError) as err:
        CLI.apply(BAD.format(rule=rule), netns=path(ns))
    assert f"line 3: add rule inet dnsd-bad c {rule}" in str(err.value)
    assert "inet dnsd-bad" not in tables(ns)  # one transaction: the table was not made either


@pytest.mark.asyncio
async def test_async_apply_for_real(ns: str) -> None:
    await CLI.apply_async((GOLDEN_DIR / "one_network.nft").read_text(), netns=path(ns))
    assert "inet dnsd" in tables(ns)
    with pytest.raises(NftError, match="line 3"):
        await CLI.apply_async(BAD.format(rule="frobnicate"), netns=path(ns))


# --- the DNS redirect, for real ---

DNS_PROBE = r"""
import json, socket, sys
udp_port, tcp_port = int(sys.argv[1]), int(sys.argv[2])
out = {}
srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); srv.bind(("127.0.0.11", udp_port))
srv.settimeout(0.5)
cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); cli.settimeout(0.5)
cli.sendto(b"query", ("127.0.0.11", 53))
try:
    data, peer = srv.recvfrom(64); srv.sendto(b"answer:" + data, peer)
    reply, source = cli.recvfrom(64); out["udp"] = [reply.decode(), list(source)]
except TimeoutError:
    out["udp"] = None
tl = socket.socket(); tl.bind(("127.0.0.11", tcp_port)); tl.listen()
try:
    tc = socket.create_connection(("127.0.0.11", 53), timeout=0.5)
    conn, _ = tl.accept(); conn.sendall(b"tcp-answer")
    out["tcp"] = [tc.recv(64).decode(), list(tc.getpeername())]
except OSError:
    out["tcp"] = None
own_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); own_udp.bind(("127.0.0.11", 53))
own_tcp = socket.socket(); own_tcp.bind(("0.0.0.0", 53)); own_tcp.listen()
out["port_53_free"] = True
print(json.dumps(out))
"""


def dns_probe(name: str, udp_port: int, tcp_port: int) -> dict[str, object]:
    argv = [sys.executable, "-c", DNS_PROBE, str(udp_port), str(tcp_port)]
    return json.loads(sh("ip", "netns", "exec", name, *argv))


@pytest.mark.parametrize("fresh", [False, True])
def test_dns_redirect_answers_from_port_53_and_leaves_53_free(ns: str, fresh: bool) -> None:
    udp_port, tcp_port = 40053, 40054
    before = dns_probe(ns, udp_port, tcp_port)
    assert before["udp"] is None and before["tcp"] is None  # control: only the DNAT routes it
    for _ in range(2):  # idempotent: applied again, still 4 rules
        CLI.apply(render_dns_redirect(udp_port, tcp_port, fresh=fresh), netns=path(ns))
    assert len(listed_rules(ns, "ip dnsd-dns stateless")) == 4  # UDP, TCP both ways, notrack
    after = dns_probe(ns, udp_port, tcp_port)
    # No conntrack: the stateless rules rewrite the replies' source port back to 53.
    assert after == {
        "udp": ["answer:query", ["127.0.0.11", 53]],
        "tcp": ["tcp-answer", ["127.0.0.11", 53]],
        "port_53_free": True,
    }


def test_the_redirect_replaces_an_older_daemons_dnat_chain(ns: str) -> None:
    """Daemons before this one DNATed TCP (and once UDP) in chain `output`: that chain kept
    conntrack hooked in the sandbox; re-applying the redirect removes it in one transaction."""
    old = (
        "add table ip dnsd-dns\n"
        "add chain ip dnsd-dns output { type nat hook output priority -100; policy accept; }\n"
        "add rule ip dnsd-dns output ip daddr 127.0.0.11 tcp dport 53 "
        "dnat to 127.0.0.11:40054\n"
    )
    CLI.apply(old, netns=path(ns))
    CLI.apply(render_dns_redirect(40053, 40054), netns=path(ns))
    listing = sh("ip", "netns", "exec", ns, "nft", "list", "table", "ip", "dnsd-dns")
    assert "dnat" not in listing and "chain output" not in listing, listing
    assert dns_probe(ns, 40053, 40054)["tcp"] == ["tcp-answer", ["127.0.0.11", 53]]


def test_a_tcp_connect_while_no_listener_is_refused_at_once(ns: str) -> None:
    """No conntrack to reverse the rewrite: the RST from the listener's closed port must go
    out from port 53 too, or the client would wait for its timeout."""
    CLI.apply(render_dns_redirect(40053, 40054), netns=path(ns))
    probe = (
        "import socket, time\n"
        "t = time.monotonic()\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.11', 53), timeout=5)\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__, time.monotonic() - t)\n"
    )
    kind, took = sh("ip", "netns", "exec", ns, sys.executable, "-c", probe).split()
    assert kind == "ConnectionRefusedError" and float(took) < 1, (kind, took)


# --- the host ruleset, with traffic: bridges and sandboxes inside a private "host" netns ---

SERVER = r"""
import socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1]))); srv.listen(16); print("ready", flush=True)
while True:  # tell each client the source address we see: shows masquerading
    conn, peer = srv.accept(); conn.sendall(peer[0].encode()); conn.close()
"""
CLIENT = r"""
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    print(c.recv(64).decode())
except OSError as exc:
    print(f"FAIL {exc!r}")
"""


def lab_net(index: int, name: str, **kw: object) -> Network:
    net_id = format(index, "x") * 64
    subnet = IPv4Network(f"10.231.{index}.0/24")
    v4 = Subnet4(subnet, subnet.network_address + 1)
    return Network(net_id, name, f"br-{net_id[:12]}", v4, **kw)  # type: ignore[arg-type]


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def sandbox_ip(net: Network, n: int) -> IPv4Address:
    return net.ipv4.subnet.network_address + n


class Lab:
    """A private "host" netns with one bridge per network and sandbox netns on veths."""

    def __init__(self, stack: ExitStack, nets: list[Network]) -> None:
        self.stack, self.nets = stack, nets
        self.host = stack.enter_context(namespace("host"))
        self.sandboxes: dict[str, str] = {}
        self.in_host("sysctl", "-qw", "net.ipv4.ip_forward=1")
        # A host address outside every network, as a LAN address of the host would be.
        self.in_host("ip", "addr", "add", f"{HOST_ADDRESS}/32", "dev", "lo")
        for net in nets:
            gateway = f"{net.ipv4.gateway}/{net.ipv4.subnet.prefixlen}"
            self.in_host("ip", "link", "add", net.bridge, "type", "bridge")
            self.in_host("ip", "addr", "add", gateway, "dev", net.bridge)
            self.in_host("ip", "link", "set", net.bridge, "up")
            # What the engine does for published ports reached through 127.0.0.1.
            self.in_host("sysctl", "-qw", f"net.ipv4.conf.{net.bridge}.route_localnet=1")

    def in_host(self, *argv: str) -> str:
        return sh("ip", "netns", "exec", self.host, *argv)

    def sandbox(self, key: str, net: Network, n: int) -> None:
        name = self.stack.enter_context(namespace(key))
        veth = f"v{key}{secrets.token_hex(2)}"
        self.in_host("ip", "link", "add", veth, "type", "veth", "peer", "eth0", "netns", name)
        self.in_host("ip", "link", "set", veth, "master", net.bridge, "up")
        prefix = net.ipv4.subnet.prefixlen
        sh("ip", "-n", name, "addr", "add", f"{sandbox_ip(net, n)}/{prefix}", "dev", "eth0")
        sh("ip", "-n", name, "link", "set", "eth0", "up")
        if not net.internal:
            sh("ip", "-n", name, "route", "add", "default", "via", str(net.ipv4.gateway))
        self.sandboxes[key] = name

    def serve(self, where: str, port: int) -> None:
        name = self.sandboxes.get(where, self.host)
        argv = ["ip", "netns", "exec", name, sys.executable, "-u", "-c", SERVER, str(port)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self.stack.callback(stop, proc)  # runs before its netns is deleted
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def connect(self, where: str, address: object, port: int, timeout: float = 1.0) -> str:
        name = self.sandboxes.get(where, self.host)
        argv = [sys.executable, "-c", CLIENT, str(address), str(port), str(timeout)]
        return sh("ip", "netns", "exec", name, *argv).strip()

    def apply(self, published: list[PublishedPort], nets: list[Network] | None = None) -> None:
        CLI.apply(render_host_ruleset(nets or self.nets, published), netns=path(self.host))


HOST_ADDRESS = "198.51.100.1"
A, B, INTERNAL = lab_net(1, "alpha"), lab_net(2, "bravo"), lab_net(3, "inner", internal=True)


@contextmanager
def lab(nets: list[Network], members: dict[str, tuple[Network, int]]) -> Iterator[Lab]:
    with ExitStack() as stack:
        world = Lab(stack, nets)
        for key, (net, n) in members.items():
            world.sandbox(key, net, n)
        yield world


def test_icc_off_isolates_sandboxes_but_not_their_gateway() -> None:
    quiet = lab_net(2, "bravo", icc=False)
    with lab([A, quiet], {"q1": (quiet, 2), "q2": (quiet, 3), "a1": (A, 2)}) as world:
        world.serve("q1", 80)
        world.serve("host", 9999)
        assert world.connect("q2", sandbox_ip(quiet, 2), 80) == str(sandbox_ip(quiet, 3))
        world.apply([])
        assert world.connect("q2", sandbox_ip(quiet, 2), 80).startswith("FAIL")
        assert world.connect("q2", quiet.ipv4.gateway, 9999) == str(sandbox_ip(quiet, 3))
        # Without br_netfilter only the bridge-family table sees L2 traffic: still dropped.
        world.in_host("sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0")
        assert world.connect("q2", sandbox_ip(quiet, 2), 80).startswith("FAIL")
        world.apply([], [A, B])  # ICC back on: the re-render removes the drop
        assert world.connect("q2", sandbox_ip(quiet, 2), 80) == str(sandbox_ip(quiet, 3))


def test_networks_are_isolated_and_internal_ones_closed() -> None:
    members = {"a1": (A, 2), "b1": (B, 2), "i1": (INTERNAL, 2), "i2": (INTERNAL, 3)}
    with lab([A, B, INTERNAL], members) as world:
        for key in members:
            world.serve(key, 80)
        world.serve("host", 9999)
        assert world.connect("a1", sandbox_ip(B, 2), 80) == str(sandbox_ip(A, 2))  # control
        world.apply([])
        assert world.connect("a1", sandbox_ip(B, 2), 80).startswith("FAIL")
        assert world.connect("b1", sandbox_ip(A, 2), 80).startswith("FAIL")
        assert world.connect("a1", sandbox_ip(INTERNAL, 2), 80).startswith("FAIL")
        assert world.connect("host", sandbox_ip(A, 2), 80) == str(A.ipv4.gateway)
        assert world.connect("a1", A.ipv4.gateway, 9999) == str(sandbox_ip(A, 2))
        assert world.connect("i2", sandbox_ip(INTERNAL, 2), 80) == str(sandbox_ip(INTERNAL, 3))


def test_published_port_via_localhost_host_address_and_hairpin() -> None:
    members = {"a1": (A, 2), "a2": (A, 3), "b1": (B, 2)}
    with lab([A, B], members) as world:
        world.serve("a1", 80)
        world.apply([PublishedPort(A, sandbox_ip(A, 2), PortBinding(80, 8080))])
        # Source is hidden behind the gateway where the sandbox could not answer it directly.
        assert world.connect("host", "127.0.0.1", 8080) == str(A.ipv4.gateway)
        # Any local address works; a source the sandbox can route back to stays visible.
        assert world.connect("host", HOST_ADDRESS, 8080) == HOST_ADDRESS
        assert world.connect("host", A.ipv4.gateway, 8080) == str(A.ipv4.gateway)
        assert world.connect("a2", A.ipv4.gateway, 8080) == str(A.ipv4.gateway)  # hairpin
        # A published port is reachable from every sandbox (as with Docker's userland proxy),
        # from another network too (its source is masqueraded like all traffic leaving B).
        assert world.connect("b1", B.ipv4.gateway, 8080) == str(A.ipv4.gateway)
        # ... but isolation still drops direct traffic between the networks.
        assert world.connect("b1", sandbox_ip(A, 2), 80, timeout=0.5).startswith("FAIL")
        assert world.connect("host", "127.0.0.1", 8081, timeout=0.5).startswith("FAIL")
        world.apply([])  # unpublished: gone
        assert world.connect("host", "127.0.0.1", 8080, timeout=0.5).startswith("FAIL")


# --- in-process libnftables (issue 13: no fork and exec per sandbox namespace) ---


def test_libnftables_applies_in_the_workers_namespace_only(ns: str) -> None:
    from netcore.kernel.linux import LinuxKernel
    from netcore.kernel.netns import NamespaceWorker
    from netcore.nft.inproc import NftLib

    assert NftLib.load() is not None, "libnftables.so.1 (package libnftables1) is missing"
    own_before = sh("nft", "list", "tables")
    worker = NamespaceWorker(path(ns))
    # The daemon has thousands of descriptors: libnftables (select(2)) must not run in it.
    spare = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
    LinuxKernel().apply_dns_redirect(worker, 40053, 40054)
    assert len(listed_rules(ns, "ip dnsd-dns stateless")) == 4
    assert sh("nft", "list", "tables") == own_before  # nothing in the daemon's namespace
    LinuxKernel().remove_dns_redirect(path(ns), worker)
    assert "ip dnsd-dns" not in tables(ns)
    for fd in spare:
        os.close(fd)


def test_libnftables_refusal_names_the_failing_line(ns: str) -> None:
    from netcore.kernel.netns import NamespaceWorker
    from netcore.nft.inproc import NftLib

    lib = NftLib.load()
    assert lib is not None
    with pytest.raises(NftError, match=r"(?s)sandbox.s namespace.*line 3: add rule inet dnsd-bad"):
        NamespaceWorker(path(ns)).call(lambda: lib.apply_here(BAD.format(rule="frobnicate")))
    assert "inet dnsd-bad" not in tables(ns)  # one transaction: nothing of it applied


def test_a_batch_of_redirects_lands_in_each_namespace_and_reports_each_failure() -> None:
    """A restart applies every sandbox's redirect in one batch over the helpers: each lands in
    its own namespace with its own ports; a vanished namespace fails alone."""
    from netcore.errors import VanishedNamespace
    from netcore.kernel.linux import LinuxKernel
    from netcore.kernel.netns import NamespaceWorker

    with ExitStack() as stack:
        names = [stack.enter_context(namespace(f"nftb{i}")) for i in range(5)]
        workers = [NamespaceWorker(path(n)) for n in names]
        doomed = stack.enter_context(namespace("nftgone"))
        gone = NamespaceWorker(path(doomed))
        sh("ip", "netns", "delete", doomed)
        jobs = [(w, 41000 + i, 42000 + i) for i, w in enumerate(workers)]
        errors = LinuxKernel().apply_dns_redirects([*jobs[:2], (gone, 40000, 40001), *jobs[2:]])

        assert [e is None for e in errors] == [True, True, False, True, True, True]
        assert isinstance(errors[2], VanishedNamespace)
        for i, name in enumerate(names):
            rules = listed_rules(name, "ip dnsd-dns stateless")
            assert any(f"udp dport set {41000 + i}" in r for r in rules), rules
            assert any(f"tcp dport set {42000 + i}" in r for r in rules), rules
