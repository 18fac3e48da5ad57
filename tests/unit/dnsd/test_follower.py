"""The follower with its listener set and sandbox-files writer, on `FakeKernel` (no root).

FakeKernel's namespace workers run jobs on the caller's thread, so a sandbox's listener is a
pair of real sockets on 127.0.0.11 of the test's own namespace: queries reach it over loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from dnsd.config import DaemonConfig
from dnsd.core.answer import Forward
from dnsd.core.wire import parse_query
from dnsd.follower import Follower
from dnsd.forward.forwarder import Forwarder
from dnsd.forward.health import UpstreamHealth
from netcore.errors import NftError
from netcore.kernel.fake import FakeKernel
from netcore.model import Endpoint, Network, Sandbox, Snapshot, Subnet4
from netcore.nft.redirect import render_dns_redirect_teardown
from tests.fakes.upstream import FakeUpstream

NET = Network(
    id="a" * 64,
    name="neta",
    bridge="br-a",
    ipv4=Subnet4(ipaddress.IPv4Network("10.1.0.0/24"), ipaddress.IPv4Address("10.1.0.1")),
)
HOST_RESOLV = "nameserver 192.0.2.53\nsearch first.test\n"


def sandbox(name: str, digit: str, tmp: Path) -> Sandbox:
    return Sandbox(
        id=digit * 64,
        name=name,
        netns_path=f"/run/netns/test-{name}",
        owned=True,
        resolv_conf_path=str(tmp / name / "resolv.conf"),
        hosts_path=str(tmp / name / "hosts"),
    )


def snapshot(revision: int, *attached: Sandbox, detached: tuple[Sandbox, ...] = ()) -> Snapshot:
    """`attached` sandboxes on NET (10.1.0.2, .3, ... in order), `detached` on no network."""
    return Snapshot(
        revision=revision,
        networks=(NET,),
        sandboxes=(*attached, *detached),
        endpoints=tuple(
            Endpoint(
                id=sb.id[::-1],
                network_id=NET.id,
                sandbox_id=sb.id,
                ifname="eth0",
                host_ifname="v" + sb.name,
                mac=f"02:42:0a:01:00:{i:02x}",
                ipv4=ipaddress.IPv4Address(f"10.1.0.{i}"),
            )
            for i, sb in enumerate(attached, start=2)
        ),
    )


@contextlib.asynccontextmanager
async def following(tmp: Path, kernel: FakeKernel) -> AsyncIterator[tuple[Follower, FakeUpstream]]:
    """A follower whose only upstream is a FakeUpstream on loopback (`--upstream`): nothing a
    test forwards leaves the machine."""
    host_file = tmp / "host-resolv.conf"
    if not host_file.exists():
        host_file.write_text(HOST_RESOLV)
    async with FakeUpstream() as upstream:
        config = DaemonConfig(
            state_dir=str(tmp / "state"),
            host_resolv_conf=str(host_file),
            upstreams=(f"127.0.0.1:{upstream.port}",),
        )
        forwarder = Forwarder(UpstreamHealth())
        follower = Follower(asyncio.get_running_loop(), config, forwarder, kernel)
        try:
            yield follower, upstream
        finally:
            await follower.close()


def kernel_with(*sandboxes: Sandbox) -> FakeKernel:
    kernel = FakeKernel()
    for sb in sandboxes:
        kernel.add_foreign_netns(sb.netns_path)
    return kernel


async def ask(follower: Follower, asker: Sandbox, qname: str) -> DNSRecord:
    """Send a UDP query to the listener of `asker`, as a process of the sandbox would."""
    listener = follower.listeners.get(asker.id)
    assert listener is not None, f"no listener for {asker.name}"
    port = listener.sockets.ports[0]
    query = DNSRecord.question(qname, "A")

    def exchange() -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(3)
            sock.sendto(query.pack(), ("127.0.0.11", port))
            return sock.recv(4096)

    return DNSRecord.parse(await asyncio.to_thread(exchange))


async def eventually(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def addresses(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]


@pytest.mark.asyncio
async def test_a_new_sandbox_gets_a_serving_listener_and_its_files(tmp_path):
    web, cli = sandbox("web", "b", tmp_path), sandbox("cli", "c", tmp_path)
    kernel = kernel_with(web, cli)
    async with following(tmp_path, kernel) as (follower, _):
        await asyncio.to_thread(follower.on_snapshot, snapshot(1, web, cli))

        assert web.id in follower.listeners and cli.id in follower.listeners
        for sb in (web, cli):
            udp_port, tcp_port = follower.listeners.get(sb.id).sockets.ports
            assert f"udp dport 53 notrack udp dport set {udp_port}" in kernel.nft[sb.netns_path]
            assert f"tcp dport 53 notrack tcp dport set {tcp_port}" in kernel.nft[sb.netns_path]
        assert addresses(await ask(follower, web, "cli")) == ["10.1.0.3"]
        resolv = Path(web.resolv_conf_path).read_text()
        assert "nameserver 127.0.0.11" in resolv and "search first.test" in resolv
        assert "10.1.0.2\t" in Path(web.hosts_path).read_text()
        assert "10.1.0.3\t" in Path(cli.hosts_path).read_text()


@pytest.mark.asyncio
async def test_a_sandbox_gone_from_the_snapshot_loses_its_listener_and_redirect(tmp_path):
    web, cli, db = (sandbox(n, d, tmp_path) for n, d in (("web", "b"), ("cli", "c"), ("db", "d")))
    kernel = kernel_with(web, cli, db)
    async with following(tmp_path, kernel) as (follower, upstream):
        await asyncio.to_thread(follower.on_snapshot, snapshot(1, web, cli, db))
        kept = follower.listeners.get(cli.id)
        web_udp = follower.listeners.get(web.id).sockets.udp
        db_udp = follower.listeners.get(db.id).sockets.udp

        # web is disconnected (still known, no network), db is removed altogether.
        await asyncio.to_thread(follower.on_snapshot, snapshot(2, cli, detached=(web,)))

        assert web.id not in follower.listeners and db.id not in follower.listeners
        assert follower.listeners.get(cli.id) is kept
        for sb in (web, db):
            await eventually(lambda sb=sb: f"remove_dns_redirect {sb.netns_path}" in kernel.calls)
            assert kernel.nft[sb.netns_path] == render_dns_redirect_teardown()
        assert web_udp.fileno() == -1 and db_udp.fileno() == -1
        assert f"remove_dns_redirect {cli.netns_path}" not in kernel.calls
        reply = await ask(follower, cli, "web")  # no longer on cli's network: forwarded
        assert reply.header.rcode == RCODE.NXDOMAIN and upstream.qnames() == ["web"]

        # A snapshot overtaken by a newer one changes nothing.
        await asyncio.to_thread(follower.on_snapshot, snapshot(1, web, cli, db))
        assert web.id not in follower.listeners


@pytest.mark.asyncio
async def test_a_changed_host_resolv_conf_rewrites_every_sandbox_file(tmp_path):
    web = sandbox("web", "b", tmp_path)
    async with following(tmp_path, kernel_with(web)) as (follower, _):
        await asyncio.to_thread(follower.on_snapshot, snapshot(1, web))
        assert "search first.test" in Path(web.resolv_conf_path).read_text()
        assert not await asyncio.to_thread(follower.reload_host)  # unchanged: nothing to do

        (tmp_path / "host-resolv.conf").write_text("nameserver 192.0.2.54\nsearch second.test\n")
        assert await asyncio.to_thread(follower.reload_host)

        resolv = Path(web.resolv_conf_path).read_text()
        assert "search second.test" in resolv and "first.test" not in resolv
        assert follower.files.host.text.startswith("nameserver 192.0.2.54")
        assert web.id in follower.listeners


@pytest.mark.asyncio
async def test_a_listener_that_fails_to_start_is_logged_and_the_others_start(tmp_path, caplog):
    web, gone, refused = (
        sandbox(n, d, tmp_path) for n, d in (("web", "b"), ("gone", "c"), ("refused", "d"))
    )
    kernel = kernel_with(web, refused)  # gone's namespace vanished
    kernel.fail_dns_redirect[refused.netns_path] = NftError("nft refused the script")
    caplog.set_level(logging.WARNING)
    async with following(tmp_path, kernel) as (follower, _):
        await asyncio.to_thread(follower.on_snapshot, snapshot(1, web, gone, refused))

        assert web.id in follower.listeners
        assert gone.id not in follower.listeners and refused.id not in follower.listeners
        assert addresses(await ask(follower, web, "refused")) == ["10.1.0.4"]
        messages = [r.getMessage() for r in caplog.records]
        assert any(m.startswith("dns listener for gone not started:") for m in messages)
        assert any("listener for refused not started: nft refused" in m for m in messages)
        assert Path(gone.resolv_conf_path).exists()  # its files are written all the same

        # At start-up, a redirect left in a namespace without listener is removed.
        await asyncio.to_thread(follower.clear_stale_redirects)
        assert f"remove_dns_redirect {refused.netns_path}" in kernel.calls
        assert f"remove_dns_redirect {web.netns_path}" not in kernel.calls
        assert f"remove_dns_redirect {gone.netns_path}" not in kernel.calls


@pytest.mark.asyncio
async def test_a_listener_prepared_during_a_connect_is_adopted_or_discarded(tmp_path):
    web, cli = sandbox("web", "b", tmp_path), sandbox("cli", "c", tmp_path)
    kernel = kernel_with(web, cli)
    async with following(tmp_path, kernel) as (follower, _):
        follower.prepare_listener(web)
        follower.prepare_listener(cli)
        await eventually(lambda: kernel.calls.count("apply_dns_redirect " + cli.netns_path) == 1)

        await asyncio.to_thread(follower.on_snapshot, snapshot(1, web))

        assert kernel.calls.count(f"netns_worker {web.netns_path}") == 1  # adopted, not reopened
        assert addresses(await ask(follower, web, "web")) == ["10.1.0.2"]
        # A snapshot without cli (another host's change, say) leaves its listener prepared.
        assert f"remove_dns_redirect {cli.netns_path}" not in kernel.calls
        # The engine says its connect failed: the listener is closed, its redirect removed.
        await asyncio.to_thread(follower.abandon_listener, cli)
        assert f"remove_dns_redirect {cli.netns_path}" in kernel.calls
        assert cli.id not in follower.listeners


@pytest.mark.asyncio
async def test_a_first_connect_adds_its_redirect_a_start_up_recreates_the_table(tmp_path):
    """A namespace met at a sandbox's first connect holds no older daemon's table: its
    redirect deletes nothing (a deletion makes the kernel wait for an RCU grace period,
    ~10 ms of the connect). A listener started otherwise re-creates the table."""
    web, cli = sandbox("web", "b", tmp_path), sandbox("cli", "c", tmp_path)
    kernel = kernel_with(web, cli)
    async with following(tmp_path, kernel) as (follower, _):
        follower.prepare_listener(web)
        await asyncio.to_thread(follower.on_snapshot, snapshot(1, web))
        await asyncio.to_thread(follower.on_snapshot, snapshot(2, web, cli))
        assert "delete" not in kernel.nft[web.netns_path]
        assert "flush chain ip dnsd-dns stateless" in kernel.nft[web.netns_path]
        assert "delete table ip dnsd-dns" in kernel.nft[cli.netns_path]
        assert addresses(await ask(follower, cli, "web")) == ["10.1.0.2"]


@pytest.mark.asyncio
async def test_a_change_arriving_during_a_connect_does_not_cost_its_listener(tmp_path):
    """CI saw it on an overlay (2026-12-07): another host's endpoint arrived while this host's
    first connect of d0 ran; the listener prepared for d0 was taken for a failed connect's and
    closed, then removed the redirect of the one opened when the connect committed."""
    web, d0 = sandbox("web", "b", tmp_path), sandbox("d0", "c", tmp_path)
    kernel = kernel_with(web, d0)
    async with following(tmp_path, kernel) as (follower, _):
        follower.prepare_listener(d0)
        await eventually(lambda: kernel.calls.count("apply_dns_redirect " + d0.netns_path) == 1)
        await asyncio.to_thread(follower.on_snapshot, snapshot(1, web))  # the remote change
        await asyncio.to_thread(follower.on_snapshot, snapshot(2, web, d0))  # d0's commit

        assert kernel.calls.count(f"netns_worker {d0.netns_path}") == 1  # adopted, not reopened
        assert f"remove_dns_redirect {d0.netns_path}" not in kernel.calls
        assert addresses(await ask(follower, d0, "d0")) == ["10.1.0.3"]


@pytest.mark.asyncio
async def test_other_names_are_forwarded_and_a_removed_sandbox_gets_servfail(tmp_path):
    web = sandbox("web", "b", tmp_path)
    async with following(tmp_path, kernel_with(web)) as (follower, upstream):
        await asyncio.to_thread(follower.on_snapshot, snapshot(1, web))
        assert addresses(await ask(follower, web, "ext.anchors.test")) == ["198.51.100.200"]
        assert upstream.qnames() == ["ext.anchors.test"]

        # A query the listener read just before web was removed.
        await asyncio.to_thread(follower.on_snapshot, snapshot(2))
        packet = DNSRecord.question("ext.anchors.test", "A").pack()
        reply = await follower.forward(packet, Forward(parse_query(packet)), web.id, tcp=False)
        assert DNSRecord.parse(reply).header.rcode == RCODE.SERVFAIL
        assert upstream.qnames() == ["ext.anchors.test"]
