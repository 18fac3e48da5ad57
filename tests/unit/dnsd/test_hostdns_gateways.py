"""`--host-dns gateways`: the wanted addresses from a snapshot, the plan against the open ones, and
the service following snapshots with real listeners on loopback (a network whose "bridge" is
`lo` has its gateway on 127/8, so it binds without root)."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from ipaddress import ip_address

import pytest

from dnsd.config import DaemonConfig
from dnsd.hostdns import resolved as resolved_module
from dnsd.hostdns.gateways import (
    ListenerPlan,
    gateway_addresses,
    parse_gateways,
    plan_listeners,
    wanted_addresses,
)
from dnsd.hostdns.listener import HostAddress
from dnsd.hostdns.resolved import LinkSettings
from dnsd.hostdns.service import HostDns, HostDnsConfig
from netcore.errors import InvalidArgument
from tests.support.dns import exchange, query, rcode, reply_addresses
from tests.support.snapshots import endpoint, network, sandbox, snapshot

APP = network("a" * 64, "app", "br-app", "10.1.0.0/24", v6="fd00:1::/64")
DB = network("b" * 64, "db", "br-db", "10.2.0.0/24", internal=True)
OVERLAY = network("c" * 64, "ov", "br-ov", "10.3.0.0/24", driver="overlay", vni=4100)
LINKS = frozenset({"lo", "br-app", "br-db"})  # br-ov: no sandbox of this host joined it yet


def _at(address: str, port: int = 53) -> HostAddress:
    return HostAddress(ip_address(address), port)


@pytest.mark.parametrize(
    ("value", "port"),
    [("gateways", 53), ("gateways:5353", 5353), ("Gateways", 53), ("10.1.0.1", None)],
)
def test_parse_gateways(value, port):
    assert parse_gateways(value) == port


@pytest.mark.parametrize("value", ["gateways:0", "gateways:dns", "gateways:70000"])
def test_bad_gateways_port_names_the_flag(value):
    with pytest.raises(InvalidArgument, match=r"^--host-dns: .*port must be 1-65535"):
        parse_gateways(value)


def test_config_takes_gateways_with_static_addresses():
    config = HostDnsConfig.from_daemon(
        DaemonConfig(host_dns=("127.0.0.153", "gateways", "10.1.0.1", "gateways:53"))
    )
    assert config.addresses == (_at("127.0.0.153"), _at("10.1.0.1"))
    assert config.gateway_port == 53 and config.listens
    assert HostDnsConfig.from_daemon(DaemonConfig(host_dns=("127.0.0.153",))).gateway_port is None
    with pytest.raises(InvalidArgument, match=r"^--host-dns: .*ports 53 and 5353"):
        HostDnsConfig.from_daemon(DaemonConfig(host_dns=("gateways", "gateways:5353")))


def test_wanted_addresses_are_static_then_every_local_gateway_once():
    snap = snapshot([APP, DB, OVERLAY], [], [])
    assert gateway_addresses(snap, 53, LINKS) == (
        _at("10.1.0.1"),
        _at("fd00:1::1"),
        _at("10.2.0.1"),  # internal: its gateway is on the host's bridge all the same
    )
    static = (_at("127.0.0.153"), _at("10.2.0.1"))
    assert wanted_addresses(snap, static, 53, LINKS) == (
        _at("127.0.0.153"),
        _at("10.2.0.1"),  # given statically and a gateway: once
        _at("10.1.0.1"),
        _at("fd00:1::1"),
    )
    assert wanted_addresses(snap, static, None, LINKS) == static  # no `gateways`
    assert wanted_addresses(snap, (), 5353, {*LINKS, "br-ov"})[-1] == _at("10.3.0.1", 5353)
    # the same gateway on another port than a static listener is another listener
    assert _at("10.2.0.1", 5353) in wanted_addresses(snap, static, 5353, LINKS)


def test_plan_closes_the_unwanted_and_opens_the_missing():
    a, b, c = _at("10.1.0.1"), _at("10.2.0.1"), _at("10.3.0.1")
    assert plan_listeners([a, b], [b, c]) == ListenerPlan(close=(a,), open=(c,))
    assert plan_listeners([a], [a]) == ListenerPlan(close=(), open=())
    assert plan_listeners([], [c, a]) == ListenerPlan(close=(), open=(c, a))


# --- the service, following snapshots with real loopback listeners ---


def _loopback_network(name: str, seed: int) -> tuple:
    """A network on `lo` in a random 127/8 /24 (other test runs use other ones)."""
    subnet = f"127.{seed % 200 + 20}.{seed // 200 % 250 + 1}.0/24"
    return network(f"{seed:064x}", name, "lo", subnet)


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def _port_free(address: tuple[str, int]) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(address)
            except OSError:
                return False
    return True


async def _ask(address: tuple[str, int], name: str, *, tcp: bool = False) -> bytes:
    return await exchange(address, query(name), tcp=tcp)


class RecordingResolved:
    """What the service asks of resolved (a registrar that found it)."""

    def __init__(self) -> None:
        self.applied: list[dict[str, LinkSettings]] = []

    def start(self) -> bool:
        return True

    def apply(self, wanted: dict[str, LinkSettings]) -> None:
        self.applied.append(dict(wanted))

    def close(self) -> None:
        self.apply({})


@pytest.mark.asyncio
async def test_service_opens_and_closes_gateway_listeners_with_the_networks(caplog, monkeypatch):
    seed = random.randrange(1, 40000)
    net = _loopback_network("loop", seed)
    gateway = str(net.ipv4.gateway)
    port = _free_port(gateway)
    monkeypatch.setattr(resolved_module, "DNS_PORT", port)  # resolved: what is on "53"
    web = sandbox("1" * 64, "web")
    # bridge present, address not on this host: not bindable yet (logged once, retried)
    absent = network("d" * 64, "absent", "lo", "192.0.2.0/24")
    resolved = RecordingResolved()
    service = HostDns(HostDnsConfig(gateway_port=port), links=lambda: {"lo"}, resolved=resolved)
    service.bind()
    await service.start()
    on_snapshot = service.on_snapshot

    async def follow(*networks, revision, endpoints=()):
        await asyncio.to_thread(on_snapshot, snapshot(networks, [web], endpoints, revision))

    try:
        caplog.set_level(logging.INFO, logger="dnsd.hostdns")
        await follow(revision=1)
        assert service.addresses == ()
        await follow(net, OVERLAY, revision=2)  # the overlay's bridge is not here
        assert service.addresses == (_at(gateway, port),)
        await follow(net, absent, revision=3, endpoints=[endpoint("e1" * 32, net, web.id, 2)])
        for tcp in (False, True):
            reply = await _ask((gateway, port), "web.loop", tcp=tcp)
            assert reply_addresses(reply) == [str(net.ipv4.subnet.network_address + 2)]
        assert rcode(await _ask((gateway, port), "example.com")) == "REFUSED"
        assert resolved.applied[-1] == {"lo": LinkSettings("lo", (gateway,), ("loop",))}
        await follow(net, absent, revision=4)
        not_yet = [r for r in caplog.records if "192.0.2.1" in r.message]
        assert len(not_yet) == 1 and "tried again on the next change" in not_yet[0].message
        await follow(revision=5)  # the network is gone: so is its listener
        assert service.addresses == () and _port_free((gateway, port))
        assert resolved.applied[-1] == {}
        await follow(net, revision=6)  # created again: answers again
        assert rcode(await _ask((gateway, port), "nobody.loop")) == "NXDOMAIN"
    finally:
        await service.close()
    assert _port_free((gateway, port)) and resolved.applied[-1] == {}


@pytest.mark.asyncio
async def test_a_static_address_equal_to_a_gateway_is_opened_once_and_kept():
    net = _loopback_network("same", random.randrange(40000, 50000))
    gateway = str(net.ipv4.gateway)
    port = _free_port(gateway)
    static = _at(gateway, port)
    service = HostDns(HostDnsConfig((static,), gateway_port=port), links=lambda: {"lo"})
    service.bind()
    await service.start()
    try:
        await asyncio.to_thread(service.on_snapshot, snapshot([net], [], [], 1))
        assert service.addresses == (static,)
        await asyncio.to_thread(service.on_snapshot, snapshot([], [], [], 2))
        assert service.addresses == (static,)  # static: for the daemon's whole life
        assert rcode(await _ask((gateway, port), "x.same")) == "REFUSED"
    finally:
        await service.close()


@pytest.mark.asyncio
async def test_following_on_the_loop_itself_is_refused_not_a_deadlock(caplog):
    net = _loopback_network("onloop", random.randrange(50000, 60000))
    port = _free_port(str(net.ipv4.gateway))
    service = HostDns(HostDnsConfig(gateway_port=port), links=lambda: {"lo"})
    service.bind()
    await service.start()
    try:
        caplog.set_level(logging.WARNING, logger="dnsd.hostdns")
        service.on_snapshot(snapshot([net], [], [], 1))  # wrongly on the loop: returns at once
        assert service.addresses == ()
        assert "off the event loop" in caplog.text
    finally:
        await service.close()
