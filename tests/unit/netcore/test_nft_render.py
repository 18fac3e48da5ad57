"""Pure nft rendering (host ruleset, DNS redirect) against goldens, plus the apply edge's logic.

Goldens live in tests/unit/netcore/golden/nft/<case>.nft. After an intended change of the
rendered rules, rewrite them with

    UPDATE_GOLDEN=1 python3 -m pytest tests/unit/netcore/test_nft_render.py

and review the diff. tests/integration/test_nft_apply.py applies every golden for real.
"""

from __future__ import annotations

import asyncio
import os
import random
import stat
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

import pytest

from netcore.errors import Conflict, InvalidArgument, NftError, VanishedNamespace
from netcore.model import Network, PortBinding, Subnet4, Subnet6
from netcore.nft import (
    NftCli,
    PublishedPort,
    RecordingRunner,
    describe_failure,
    render_dns_redirect,
    render_dns_redirect_teardown,
    render_host_ruleset,
    render_host_teardown,
)

GOLDEN_DIR = Path(__file__).parent / "golden" / "nft"


def net(index: int, name: str, **kw: object) -> Network:
    """Network number `index` (1-15): 172.(17+index).0.0/16, bridge br-<12 hex>."""
    net_id = format(index, "x") * 64
    return Network(
        id=net_id,
        name=name,
        bridge=f"br-{net_id[:12]}",
        ipv4=Subnet4(IPv4Network(f"172.{17 + index}.0.0/16"), IPv4Address(f"172.{17 + index}.0.1")),
        **kw,  # type: ignore[arg-type]
    )


def port(network: Network, host: int, sandbox: int, cport: int, **kw: object) -> PublishedPort:
    address = network.ipv4.subnet.network_address + sandbox
    return PublishedPort(network, address, PortBinding(cport, host, **kw))  # type: ignore[arg-type]


FRONT = net(1, "front")
BACK = net(2, "back")
DB = net(3, "db")
INTERNAL = net(4, "secret", internal=True)
NO_ICC = net(5, "quiet", icc=False)
NO_MASQ = net(6, "routed", masquerade=False)
DUAL = net(
    7,
    "dual",
    ipv6=Subnet6(IPv6Network("fd00:7::/64"), IPv6Address("fd00:7::1")),
    icc=False,
)
LOCALHOST = IPv4Address("127.0.0.1")

CASES: dict[str, Callable[[], str]] = {
    "empty": lambda: render_host_ruleset([], []),
    "one_network": lambda: render_host_ruleset([FRONT], []),
    "two_networks": lambda: render_host_ruleset([FRONT, BACK], []),
    "three_networks": lambda: render_host_ruleset([DB, FRONT, BACK], []),
    "internal": lambda: render_host_ruleset(
        [FRONT, INTERNAL],
        [port(INTERNAL, 9000, 2, 80)],  # never published
    ),
    "icc_off": lambda: render_host_ruleset([NO_ICC], []),
    "icc_off_bridge_meta": lambda: render_host_ruleset([NO_ICC], [], bridge_meta=True),
    "masquerade_off": lambda: render_host_ruleset([NO_MASQ], [port(NO_MASQ, 8080, 2, 80)]),
    "published": lambda: render_host_ruleset(
        [FRONT, BACK],
        [
            port(FRONT, 8080, 2, 80),
            port(FRONT, 8081, 2, 80, host_ip=LOCALHOST),
            port(FRONT, 5353, 3, 53, proto="udp"),
            port(BACK, 8082, 2, 8000, host_ip=IPv4Address("192.0.2.10")),
            port(BACK, 9000, 3, 9000, proto="sctp"),
        ],
    ),
    "dual_stack": lambda: render_host_ruleset([DUAL, FRONT], [port(DUAL, 443, 2, 8443)]),
    "host_teardown": render_host_teardown,
    "redirect": lambda: render_dns_redirect(udp_port=40053, tcp_port=40054),
    "redirect_teardown": render_dns_redirect_teardown,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    rendered = CASES[case]()
    path = GOLDEN_DIR / f"{case}.nft"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered)
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 and review it"
    assert rendered == path.read_text()


def test_every_golden_file_has_a_case() -> None:
    """A stale golden would still be applied by the integration test: keep the set exact."""
    assert {p.stem for p in GOLDEN_DIR.glob("*.nft")} == set(CASES)


# --- properties of the host ruleset ---


def _rules(script: str, chain: str) -> list[str]:
    prefix = f"add rule inet dnsd {chain} "
    return [line[len(prefix) :] for line in script.splitlines() if line.startswith(prefix)]


def test_input_order_does_not_change_the_script() -> None:
    nets = [FRONT, BACK, DB, INTERNAL, NO_ICC, DUAL]
    ports = [port(FRONT, 8080 + i, 2 + i, 80) for i in range(5)] + [port(DUAL, 53, 9, 53)]
    expected = render_host_ruleset(nets, ports)
    rng = random.Random(7)
    for _ in range(5):
        rng.shuffle(nets)
        rng.shuffle(ports)
        assert render_host_ruleset(nets, ports) == expected


def test_never_wipes_tables_nor_the_user_chain() -> None:
    script = CASES["published"]()
    assert "flush table" not in script and "delete" not in script
    assert "flush chain inet dnsd user" not in script
    assert "add chain inet dnsd user\n" in script
    # The user chain is evaluated before anything of ours can accept; only DNATed flows to
    # published ports are accepted before the isolation drops.
    forward = _rules(script, "forward")
    assert forward[0] == "jump user"
    before_isolation = forward[1 : forward.index("jump isolation")]
    assert before_isolation and all("ct status dnat" in rule for rule in before_isolation)


def test_a_removed_network_leaves_no_rule() -> None:
    script = render_host_ruleset([BACK], [])
    assert FRONT.bridge not in script and str(FRONT.ipv4.subnet) not in script
    # ... because every chain holding per-network rules is flushed on each render.
    for chain in ("isolation", "published", "forward", "prerouting", "output", "postrouting"):
        assert f"flush chain inet dnsd {chain}\n" in script
    assert "flush chain bridge dnsd forward\n" in script


def test_isolation_drops_towards_every_other_bridge() -> None:
    script = render_host_ruleset([FRONT, BACK, DB], [])
    # one rule per network against a set of every bridge: linear in the number of networks
    assert _rules(script, "isolation") == [
        f'iifname "{n.bridge}" oifname != "{n.bridge}" oifname @bridges drop'
        for n in (BACK, DB, FRONT)
    ]
    members = ", ".join(f'"{n.bridge}"' for n in sorted((FRONT, BACK, DB), key=lambda n: n.bridge))
    assert f"add element inet dnsd bridges {{ {members} }}\n" in script
    assert _rules(render_host_ruleset([FRONT], []), "isolation") == []


def test_internal_network_has_no_nat_and_nothing_crosses_it() -> None:
    script = render_host_ruleset([INTERNAL], [port(INTERNAL, 9000, 2, 80)])
    br = f'"{INTERNAL.bridge}"'
    assert _rules(script, "published") == []
    assert _rules(script, "postrouting") == []
    assert _rules(script, "forward")[2:4] == [
        f"iifname {br} oifname != {br} drop",
        f"oifname {br} iifname != {br} drop",
    ]
    assert "established" not in script


def test_icc_off_drops_at_both_layers() -> None:
    script = render_host_ruleset([NO_ICC, FRONT], [])
    br = f'"{NO_ICC.bridge}"'
    assert f"iifname {br} oifname {br} drop" in _rules(script, "forward")
    assert f'iifname "{FRONT.bridge}" oifname "{FRONT.bridge}" accept' in _rules(script, "forward")
    bridge_rules = [ln for ln in script.splitlines() if ln.startswith("add rule bridge")]
    assert bridge_rules == [
        "add rule bridge dnsd forward ip saddr 172.22.0.0/16 drop",
        "add rule bridge dnsd forward arp saddr ip 172.22.0.0/16 drop",
    ]


def test_icc_on_everywhere_still_renders_the_empty_bridge_chain() -> None:
    """So that turning ICC back on removes the L2 drop."""
    script = render_host_ruleset([FRONT], [])
    assert "add chain bridge dnsd forward { type filter hook forward priority 0;" in script
    assert "flush chain bridge dnsd forward" in script
    assert "add rule bridge" not in script


def test_published_ports_accept_only_dnat_traffic_and_masquerade_hairpin() -> None:
    script = render_host_ruleset([FRONT], [port(FRONT, 8080, 2, 80), port(FRONT, 8081, 2, 80)])
    br = f'"{FRONT.bridge}"'
    forward = _rules(script, "forward")
    # Two host ports onto one sandbox port: one forward rule.
    assert (
        forward.count(f"oifname {br} ip daddr 172.18.0.2 tcp dport 80 ct status dnat accept") == 1
    )
    assert forward[-1] == f"oifname {br} drop"
    assert _rules(script, "postrouting") == [
        f"ip saddr 172.18.0.0/16 oifname != {br} masquerade",
        f"oifname {br} ct status dnat ip saddr 172.18.0.0/16 masquerade",
        f"oifname {br} ip saddr 127.0.0.0/8 masquerade",
    ]


def test_masquerade_off_keeps_only_the_published_port_nat() -> None:
    postrouting = _rules(render_host_ruleset([NO_MASQ], [port(NO_MASQ, 80, 2, 80)]), "postrouting")
    assert all("oifname !=" not in rule for rule in postrouting)
    assert len(postrouting) == 2
    assert _rules(render_host_ruleset([NO_MASQ], []), "postrouting") == []


def test_published_port_on_a_specific_host_address() -> None:
    script = render_host_ruleset([FRONT], [port(FRONT, 8081, 2, 80, host_ip=LOCALHOST)])
    assert _rules(script, "published") == [
        "ip daddr 127.0.0.1 tcp dport 8081 dnat ip to 172.18.0.2:80"
    ]


# --- refused input ---


def test_refuses_two_networks_on_one_bridge() -> None:
    twin = net(8, "twin")
    clash = Network(twin.id, twin.name, FRONT.bridge, twin.ipv4)
    with pytest.raises(InvalidArgument, match="both use bridge"):
        render_host_ruleset([FRONT, clash], [])


@pytest.mark.parametrize("bridge", ['br"x', "br x", "br;drop", "a" * 16, ""])
def test_refuses_bridge_names_that_could_inject(bridge: str) -> None:
    bad = Network(FRONT.id, FRONT.name, bridge, FRONT.ipv4)
    with pytest.raises(InvalidArgument, match="bridge"):
        render_host_ruleset([bad], [])


def test_refuses_a_port_of_an_unrendered_network() -> None:
    with pytest.raises(InvalidArgument, match="not among the rendered networks"):
        render_host_ruleset([FRONT], [port(BACK, 8080, 2, 80)])


def test_refuses_an_address_outside_the_subnet() -> None:
    stray = PublishedPort(FRONT, IPv4Address("10.0.0.2"), PortBinding(80, 8080))
    with pytest.raises(InvalidArgument, match="not in subnet"):
        render_host_ruleset([FRONT], [stray])


@pytest.mark.parametrize(("host", "cport"), [(0, 80), (65536, 80), (8080, 0), (8080, 70000)])
def test_refuses_out_of_range_ports(host: int, cport: int) -> None:
    with pytest.raises(InvalidArgument, match="outside 1-65535"):
        render_host_ruleset([FRONT], [port(FRONT, host, 2, cport)])


def test_refuses_an_unknown_protocol() -> None:
    with pytest.raises(InvalidArgument, match="protocol"):
        render_host_ruleset([FRONT], [port(FRONT, 8080, 2, 80, proto="icmp")])


@pytest.mark.parametrize(
    ("first", "second"),
    [(None, None), (None, LOCALHOST), (LOCALHOST, None), (LOCALHOST, LOCALHOST)],
)
def test_refuses_two_bindings_of_one_host_port(
    first: IPv4Address | None, second: IPv4Address | None
) -> None:
    ports = [port(FRONT, 8080, 2, 80, host_ip=first), port(BACK, 8080, 3, 80, host_ip=second)]
    with pytest.raises(Conflict, match="same host port"):
        render_host_ruleset([FRONT, BACK], ports)


def test_same_host_port_on_other_address_or_protocol_is_fine() -> None:
    ports = [
        port(FRONT, 8080, 2, 80, host_ip=LOCALHOST),
        port(BACK, 8080, 3, 80, host_ip=IPv4Address("192.0.2.1")),
        port(BACK, 8080, 3, 80, proto="udp"),
    ]
    assert len(_rules(render_host_ruleset([FRONT, BACK], ports), "published")) == 3


# --- DNS redirect ---


def test_redirect_maps_port_53_to_ours() -> None:
    script = render_dns_redirect(udp_port=5300, tcp_port=5301)
    assert "ip daddr 127.0.0.11 udp dport 53 notrack udp dport set 5300" in script
    assert "ip saddr 127.0.0.11 udp sport 5300 notrack udp sport set 53" in script
    assert "ip daddr 127.0.0.11 tcp dport 53 notrack tcp dport set 5301" in script
    assert "ip saddr 127.0.0.11 tcp sport 5301 notrack tcp sport set 53" in script
    assert "dnat" not in script and "nat hook" not in script  # no conntrack in the sandbox
    # Re-created in one transaction: an older daemon's DNAT chain goes with the table.
    assert script.index("delete table ip dnsd-dns") < script.index("add chain ip dnsd-dns")
    # A namespace no older daemon set up: the same rules, added, nothing deleted.
    fresh = render_dns_redirect(udp_port=5300, tcp_port=5301, fresh=True)
    assert "delete" not in fresh and "flush chain ip dnsd-dns stateless" in fresh
    rules = [line for line in script.splitlines() if line.startswith("add rule")]
    assert rules == [line for line in fresh.splitlines() if line.startswith("add rule")]


@pytest.mark.parametrize("bad", [0, 53, 65536, -1, True, "5300"])
def test_redirect_refuses_bad_ports(bad: object) -> None:
    with pytest.raises(InvalidArgument, match="udp_port"):
        render_dns_redirect(udp_port=bad, tcp_port=5301)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="tcp_port"):
        render_dns_redirect(udp_port=5300, tcp_port=bad)  # type: ignore[arg-type]


# --- apply edge, with a fake nft binary ---

SCRIPT = "add table inet t\nadd chain inet t c\nadd rule inet t c bogus\n"
NFT_STDERR = "/dev/stdin:3:20-24: Error: syntax error, unexpected string\nadd rule inet t c bogus\n"


def fake_binary(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-nft"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_describe_failure_numbers_the_failing_lines() -> None:
    text = describe_failure(NFT_STDERR + "/dev/stdin:1:1-3: Error: nope\n", SCRIPT)
    assert text.startswith("/dev/stdin:3:20-24: Error: syntax error")
    assert text.endswith("  line 1: add table inet t\n  line 3: add rule inet t c bogus")


def test_describe_failure_without_location() -> None:
    assert describe_failure("", SCRIPT) == "(nft printed nothing)"


def test_cli_passes_the_script_on_stdin(tmp_path: Path) -> None:
    seen = tmp_path / "stdin"
    cli = NftCli(nft=fake_binary(tmp_path, f'[ "$*" = "-f -" ] || exit 9\ncat > {seen}'))
    cli.apply(SCRIPT)
    assert seen.read_text() == SCRIPT


def test_cli_failure_carries_stderr_and_line(tmp_path: Path) -> None:
    body = f"cat >/dev/null\nprintf '{NFT_STDERR}' >&2\nexit 1"
    cli = NftCli(nft=fake_binary(tmp_path, body))
    with pytest.raises(NftError) as err:
        cli.apply(SCRIPT)
    assert "syntax error" in str(err.value)
    assert "line 3: add rule inet t c bogus" in str(err.value)
    assert err.value.script == SCRIPT


@pytest.mark.asyncio
async def test_cli_async_failure_carries_line(tmp_path: Path) -> None:
    body = f"cat >/dev/null\nprintf '{NFT_STDERR}' >&2\nexit 1"
    with pytest.raises(NftError, match="line 3: add rule inet t c bogus"):
        await NftCli(nft=fake_binary(tmp_path, body)).apply_async(SCRIPT)


@pytest.mark.asyncio
async def test_cli_async_success_and_timeout(tmp_path: Path) -> None:
    seen = tmp_path / "stdin"
    await NftCli(nft=fake_binary(tmp_path, f"cat > {seen}")).apply_async(SCRIPT)
    assert seen.read_text() == SCRIPT
    slow = NftCli(nft=fake_binary(tmp_path, "exec sleep 5"), timeout=0.2)
    with pytest.raises(NftError, match="did not finish"):
        await asyncio.wait_for(slow.apply_async(SCRIPT), 3)


def test_cli_timeout_and_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(NftError, match="did not finish"):
        NftCli(nft=fake_binary(tmp_path, "exec sleep 5"), timeout=0.2).apply(SCRIPT)
    with pytest.raises(NftError, match="cannot run"):
        NftCli(nft=str(tmp_path / "absent")).apply(SCRIPT)


def test_cli_enters_the_namespace_with_nsenter(tmp_path: Path) -> None:
    netns = tmp_path / "ns"
    netns.touch()
    assert NftCli().command(str(netns)) == ["nsenter", f"--net={netns}", "--", "nft", "-f", "-"]
    assert NftCli().command(None, check_only=True) == ["nft", "-c", "-f", "-"]
    with pytest.raises(VanishedNamespace, match="does not exist"):
        NftCli().apply(SCRIPT, netns=str(tmp_path / "gone"))
    with pytest.raises(InvalidArgument, match="absolute"):
        NftCli().apply(SCRIPT, netns="run/netns/x")


def test_recording_runner_records_and_fails_on_demand() -> None:
    runner = RecordingRunner()
    runner.apply("a", None)
    asyncio.run(runner.apply_async("b", "/run/netns/x"))
    assert runner.calls == [("a", None), ("b", "/run/netns/x")]
    runner.fail_with = NftError("boom", "c")
    with pytest.raises(NftError, match="boom"):
        runner.apply("c")
    assert runner.calls[-1] == ("c", None)
