"""Who may ask a host listener: the pure source check, the REFUSED reply, and a real loopback
gateway listener that answers the host and refuses a sandbox's address (UDP and TCP)."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest
from dnslib import DNSRecord

from dnsd.core.wire import REFUSED, refused_reply
from dnsd.hostdns.admission import SandboxSources
from dnsd.hostdns.service import HostDns, HostDnsConfig
from tests.support.dns import query, rcode, reply_addresses
from tests.support.snapshots import endpoint, network, sandbox, snapshot

APP = network("a" * 64, "app", "br-app", "10.1.0.0/24", v6="fd00:1::/64")
DB = network("b" * 64, "db", "br-db", "10.2.0.0/24", internal=True)


@pytest.mark.parametrize(
    ("source", "admitted"),
    [
        ("10.1.0.1", True),  # the host's own gateway address on app
        ("10.1.0.7", False),  # a sandbox of app
        ("10.2.0.200", False),  # of the internal network
        ("fd00:1::1", True),
        ("fd00:1::9", False),
        ("127.0.0.1", True),  # the host itself
        ("192.168.1.20", True),  # elsewhere on the host's LAN: not a sandbox of ours
        ("fe80::1%br-app", True),  # a scoped link-local address (no subnet of ours)
        ("not an address", False),
    ],
)
def test_sandbox_sources_refuse_sandbox_addresses_only(source, admitted):
    assert SandboxSources.of(snapshot([APP, DB], [], [])).admits(source) is admitted


def test_no_networks_admit_everyone():
    assert SandboxSources().admits("10.1.0.7")


def test_refused_reply_echoes_the_question_and_drops_what_gets_no_reply():
    packet = query("web.app")
    reply = DNSRecord.parse(refused_reply(packet))
    assert reply.header.rcode == REFUSED and reply.header.id == DNSRecord.parse(packet).header.id
    assert str(reply.q.qname) == "web.app."
    assert refused_reply(packet[:5]) is None  # shorter than a header
    response = DNSRecord.parse(packet).reply().pack()
    assert refused_reply(response) is None  # a response: never answered (no reflection)
    two_questions = bytearray(packet)
    two_questions[5] = 2
    assert refused_reply(bytes(two_questions))[3] & 0xF == REFUSED  # bare header


def _exchange_from(source: str, server: tuple[str, int], packet: bytes, tcp: bool) -> bytes:
    """One query sent from `source` (a blocking client; run in a thread)."""
    kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.settimeout(3)
        sock.bind((source, 0))
        sock.connect(server)
        if not tcp:
            sock.send(packet)
            return sock.recv(4096)
        sock.sendall(len(packet).to_bytes(2, "big") + packet)
        data = b""
        try:
            while chunk := sock.recv(4096):
                data += chunk
                if len(data) >= 2 and len(data) >= 2 + int.from_bytes(data[:2], "big"):
                    return data[2:]
        except ConnectionResetError:  # closed with our query unread
            pass
        return b""  # closed by the server


@pytest.mark.asyncio
async def test_gateway_listener_answers_the_host_and_refuses_a_sandbox():
    seed = random.randrange(50000, 90000)
    subnet = f"127.{seed % 200 + 20}.{seed // 200 % 250 + 1}.0/24"
    net = network(f"{seed:064x}", "loop", "lo", subnet)
    gateway = str(net.ipv4.gateway)
    sandbox_address = str(net.ipv4.subnet.network_address + 2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((gateway, 0))
        port = probe.getsockname()[1]
    web = sandbox("1" * 64, "web")
    service = HostDns(HostDnsConfig(gateway_port=port), links=lambda: {"lo"})
    service.bind()
    await service.start()
    try:
        state = snapshot([net], [web], [endpoint("e1" * 32, net, web.id, 2)], 1)
        await asyncio.to_thread(service.on_snapshot, state)
        packet = query("web.loop")
        for tcp in (False, True):
            host = await asyncio.to_thread(_exchange_from, gateway, (gateway, port), packet, tcp)
            assert reply_addresses(host) == [sandbox_address]
            other = await asyncio.to_thread(
                _exchange_from, "127.0.0.1", (gateway, port), packet, tcp
            )
            assert reply_addresses(other) == [sandbox_address]
        refused = await asyncio.to_thread(
            _exchange_from, sandbox_address, (gateway, port), packet, False
        )
        assert rcode(refused) == "REFUSED" and reply_addresses(refused) == []
        closed = await asyncio.to_thread(
            _exchange_from, sandbox_address, (gateway, port), packet, True
        )
        assert closed == b""
    finally:
        await service.close()
