"""The `--host-dns` flags, the bound sockets, the hosts file and the service that follows the
registry (loopback sockets and temporary files only)."""

from __future__ import annotations

import logging
import os
import socket

import pytest

from dnsd.config import DaemonConfig
from dnsd.hostdns.hostsfile import HEADER, HostHostsFile, render_host_hosts
from dnsd.hostdns.listener import HostAddress, bind_host_sockets, parse_host_dns
from dnsd.hostdns.service import HostDns, HostDnsConfig
from netcore.errors import InvalidArgument
from tests.support.dns import exchange, query, rcode, reply_addresses
from tests.support.snapshots import endpoint, network, sandbox, snapshot

APP = network("a" * 64, "app", "br-app", "10.1.0.0/24", v6="fd00:1::/64")
DB = network("b" * 64, "db", "br-db", "10.2.0.0/24")
WEB = sandbox("1" * 64, "web", hostname="webhost")
API = sandbox("2" * 64, "api")
SNAP = snapshot(
    [APP, DB],
    [WEB, API],
    [
        endpoint("e1" * 32, APP, WEB.id, 2, v6_host=2, aliases=["www"]),
        endpoint("e2" * 32, DB, API.id, 3, aliases=["svc"]),
        endpoint("e3" * 32, APP, API.id, 3, aliases=["svc"]),
    ],
)


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("127.0.0.153", "127.0.0.153:53"),
        ("10.1.0.1:5353", "10.1.0.1:5353"),
        ("[fd00::1]:53", "[fd00::1]:53"),
        ("fd00::1", "[fd00::1]:53"),
    ],
)
def test_parse_host_dns(value, address):
    assert str(parse_host_dns(value)) == address


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("127.0.0.11", "reserved for the sandboxes"),
        ("127.0.0.11:53", "reserved"),
        ("0.0.0.0", "one address"),
        ("web", "not an IP address"),
        ("127.0.0.1:0", "port must be 1-65535"),
        ("127.0.0.1:http", "port must be"),
        ("[::1]x", r"use ADDR\[:PORT\]"),
    ],
)
def test_bad_host_dns_names_the_flag(value, fragment):
    with pytest.raises(InvalidArgument, match=fragment) as caught:
        parse_host_dns(value)
    assert str(caught.value).startswith("--host-dns: ")


def test_bad_domain_names_its_flag():
    with pytest.raises(InvalidArgument, match=r"^--host-dns-domain: "):
        HostDnsConfig.from_daemon(DaemonConfig(host_dns_domain="a;b"))


def test_bind_errors_say_what_is_wrong():
    with pytest.raises(InvalidArgument, match=r"192\.0\.2\.77 is not an address of this host"):
        bind_host_sockets(parse_host_dns("192.0.2.77:5353"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(InvalidArgument, match=f"UDP port {port} is in use on 127.0.0.1"):
            bind_host_sockets(HostAddress(parse_host_dns("127.0.0.1").ip, port))


def test_render_host_hosts():
    text = render_host_hosts(SNAP, "corp")
    assert text == HEADER + (
        "10.1.0.2\tweb.app web.app.corp webhost.app webhost.app.corp www.app www.app.corp "
        "111111111111.app 111111111111.app.corp\n"
        "10.1.0.3\tapi.app api.app.corp svc.app svc.app.corp 222222222222.app "
        "222222222222.app.corp\n"
        "fd00:1::2\tweb.app web.app.corp webhost.app webhost.app.corp www.app www.app.corp "
        "111111111111.app 111111111111.app.corp\n"
        "10.2.0.3\tapi.db api.db.corp svc.db svc.db.corp 222222222222.db 222222222222.db.corp\n"
    )


def test_hosts_file_is_rewritten_only_on_change(tmp_path):
    path = tmp_path / "sub" / "dnsd.hosts"
    hosts = HostHostsFile(str(path))
    hosts.update(SNAP)
    first = os.stat(path)
    assert path.read_text().startswith(HEADER) and "10.2.0.3\tapi.db" in path.read_text()
    hosts.update(snapshot(SNAP.networks, SNAP.sandboxes, SNAP.endpoints, revision=2))
    assert os.stat(path).st_ino == first.st_ino  # same text: same file
    hosts.update(snapshot([APP], [WEB], [SNAP.endpoints[0]], revision=3))
    assert "api" not in path.read_text() and os.stat(path).st_ino != first.st_ino


@pytest.mark.asyncio
async def test_service_answers_refuses_and_follows_the_registry(caplog):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = HostDnsConfig((HostAddress(parse_host_dns("127.0.0.1").ip, port),))
    service = HostDns(config)
    service.bind()
    await service.start()
    try:
        address = ("127.0.0.1", port)
        service.on_snapshot(SNAP)
        assert reply_addresses(await exchange(address, query("web.app"))) == ["10.1.0.2"]
        assert reply_addresses(await exchange(address, query("www.app"), tcp=True)) == ["10.1.0.2"]
        assert rcode(await exchange(address, query("example.com"))) == "REFUSED"
        caplog.set_level(logging.INFO, logger="dnsd.hostdns.service")
        for _ in range(3):  # svc: api's alias on two networks, one sandbox: unambiguous
            assert reply_addresses(await exchange(address, query("svc"))) == [
                "10.1.0.3",
                "10.2.0.3",
            ]
        both = snapshot(
            SNAP.networks,
            SNAP.sandboxes,
            (*SNAP.endpoints, endpoint("e4" * 32, DB, WEB.id, 4, aliases=["svc"])),
            revision=2,
        )
        service.on_snapshot(both)
        for _ in range(3):
            assert rcode(await exchange(address, query("svc"))) == "NXDOMAIN"
        logged = [r.message for r in caplog.records if "several networks" in r.message]
        assert len(logged) == 1 and logged[0].startswith("host dns: svc ")
        service.on_snapshot(snapshot([], [], [], revision=1))  # older: ignored
        assert reply_addresses(await exchange(address, query("web.app"))) == ["10.1.0.2"]
        service.on_snapshot(snapshot([APP], [], [], revision=3))
        assert rcode(await exchange(address, query("web.app"))) == "NXDOMAIN"
    finally:
        await service.close()
