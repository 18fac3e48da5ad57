"""The CNI plugin against the API on a unix socket (engine on the fake kernel): what a runtime
sees for ADD, CHECK and DEL, and the error JSON for each refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dnsd.cni.plugin import execute
from dnsd.cni.probe import AttachmentProblem
from netcore.engine import Engine
from netcore.kernel.fake import FakeKernel
from netcore.requests import NetworkRequest, SandboxRequest

CID = "c0ffee0123456789" + "a" * 48
NETNS = "/run/netns/cni-test-1"


class FakeProbe:
    def __init__(self) -> None:
        self.problem: str | None = None
        self.checked: list[tuple[str, str, str, str]] = []

    def host_mac(self, ifname: str) -> str | None:
        return "02:00:00:00:00:01"

    def check(self, netns: str, ifname: str, address: str, name: str) -> None:
        self.checked.append((netns, ifname, address, name))
        if self.problem:
            raise AttachmentProblem(self.problem)


@pytest.fixture
def probe() -> FakeProbe:
    return FakeProbe()


@pytest.fixture
def cni(served, kernel: FakeKernel, probe: FakeProbe):
    """Run the plugin as a runtime would; (status, parsed stdout)."""
    kernel.add_foreign_netns(NETNS)

    def call(command: str, *, ifname="eth0", netns=NETNS, cid=CID, args="", **conf: Any):
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_ARGS": args,
            "CNI_PATH": "/opt/cni/bin",
        }
        body = {"cniVersion": "1.0.0", "name": "app", "type": "dnsd", "socket": served.socket_path}
        body.update(conf)
        status, out = execute(env, json.dumps(body).encode(), probe)
        return status, json.loads(out) if out else None

    return call


@pytest.fixture
def app(engine: Engine) -> None:
    engine.create_network(NetworkRequest.build("app", subnet="10.89.0.0/24"))


def test_add_check_del_del(cni, app, engine: Engine, probe: FakeProbe):
    status, result = cni(
        "ADD",
        ifname="net1",
        args="IgnoreUnknown=1;K8S_POD_NAME=web",
        runtimeConfig={
            "aliases": {"app": ["api"]},
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
        },
    )
    assert status == 0, result
    (sandbox,) = engine.registry.sandboxes.values()
    (ep,) = engine.registry.endpoints.values()
    assert (sandbox.name, sandbox.netns_path, sandbox.owned) == ("web", NETNS, False)
    assert [(p.host_port, p.container_port) for p in sandbox.ports] == [(8080, 80)]
    assert ep.ifname == "net1" and ep.aliases == ("api", CID[:12])
    assert result == {
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": ep.host_ifname, "mac": "02:00:00:00:00:01"},
            {"name": "net1", "mac": ep.mac, "sandbox": NETNS},
        ],
        "ips": [{"address": f"{ep.ipv4}/24", "gateway": "10.89.0.1", "interface": 1}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.89.0.1"}],
        "dns": {"nameservers": ["127.0.0.11"]},
    }

    assert cni("CHECK", ifname="net1", args="K8S_POD_NAME=web") == (0, None)
    assert probe.checked == [(NETNS, "net1", str(ep.ipv4), "web")]
    probe.problem = "interface net1 is missing"
    status, err = cni("CHECK", ifname="net1", args="K8S_POD_NAME=web")
    assert status == 1 and err["code"] == 101 and err["details"] == "interface net1 is missing"

    assert cni("DEL", ifname="net1", args="K8S_POD_NAME=web") == (0, None)
    assert not engine.registry.sandboxes and not engine.registry.endpoints
    assert cni("DEL", ifname="net1", args="K8S_POD_NAME=web") == (0, None)
    status, err = cni("CHECK", ifname="net1", args="K8S_POD_NAME=web")
    assert status == 1 and err["details"] == "dnsd has no sandbox web"


def test_second_network_is_a_second_interface_and_del_keeps_the_other(cni, app, engine):
    engine.create_network(NetworkRequest.build("back", subnet="10.90.0.0/24"))
    assert cni("ADD")[0] == 0
    status, result = cni("ADD", ifname="eth1", name="back", cniVersion="0.4.0")
    assert status == 0, result
    assert result["ips"] == [
        {"version": "4", "address": "10.90.0.2/24", "gateway": "10.90.0.1", "interface": 1}
    ]
    assert result["routes"] == []  # the default route stays with the first network
    (sandbox,) = engine.registry.sandboxes.values()
    assert sorted(e.ifname for e in engine.registry.endpoints.values()) == ["eth0", "eth1"]
    assert cni("DEL", ifname="eth1", name="back") == (0, None)
    assert [e.ifname for e in engine.registry.endpoints.values()] == ["eth0"]
    assert sandbox.id in engine.registry.sandboxes
    assert cni("DEL") == (0, None)
    assert not engine.registry.sandboxes


def test_chained_after_another_plugin_prev_result_is_kept(cni, app):
    prev = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "dummy0", "sandbox": NETNS}],
        "ips": [{"address": "192.0.2.5/24", "interface": 0}],
        "dns": {"nameservers": ["192.0.2.53"]},
    }
    status, result = cni("ADD", prevResult=prev)
    assert status == 0, result
    assert result["interfaces"][0] == prev["interfaces"][0]
    assert result["ips"][0] == prev["ips"][0] and result["ips"][1]["interface"] == 2
    assert result["dns"]["nameservers"] == ["127.0.0.11", "192.0.2.53"]


def test_daemon_not_running(cni, short_tmp):
    sock = f"{short_tmp}/nothing.sock"
    status, err = cni("ADD", socket=sock)
    assert status == 1
    assert err["code"] == 11 and err["msg"] == f"cannot reach dnsd at {sock}"
    assert "dnsd serve --api-socket" in err["details"]


def test_unknown_network_and_create_true(cni, engine):
    status, err = cni("ADD", network="nope")
    assert status == 1 and err["code"] == 7 and err["msg"] == "unknown network nope"
    assert '"create": true' in err["details"]
    status, result = cni("ADD", network="made", create=True)
    assert status == 0, result
    assert any(n.name == "made" for n in engine.registry.networks.values())


def test_exhausted_pool(cni, engine, kernel):
    engine.create_network(NetworkRequest.build("app", subnet="10.91.0.0/30"))  # one address
    assert cni("ADD", args="K8S_POD_NAME=one")[0] == 0
    kernel.add_foreign_netns("/run/netns/cni-test-2")
    status, err = cni("ADD", args="K8S_POD_NAME=two", cid="b" * 64, netns="/run/netns/cni-test-2")
    assert status == 1 and err["code"] == 11
    assert err["msg"] == "cannot connect two to network app"
    assert "no free address left in subnet 10.91.0.0/30" in err["details"]
    assert [s.name for s in engine.registry.sandboxes.values()] == ["one"]  # rolled back


def test_a_name_held_by_another_live_namespace_is_refused_and_left_alone(cni, app, engine, kernel):
    live = "/proc/self/ns/net"  # a namespace that exists on this host too
    kernel.add_foreign_netns(live)
    engine.create_sandbox(SandboxRequest(name="web", netns=live, network_mode="app"))
    status, err = cni("ADD", args="K8S_POD_NAME=web")
    assert status == 1 and err["code"] == 100 and "dnsd sandbox rm web" in err["details"]
    assert cni("DEL", args="K8S_POD_NAME=web") == (0, None)
    assert [s.name for s in engine.registry.sandboxes.values()] == ["web"]


def test_a_stale_sandbox_of_a_vanished_namespace_is_replaced(cni, app, engine, kernel):
    kernel.add_foreign_netns("/run/netns/cni-gone")  # exists for the fake, not on this host
    engine.create_sandbox(SandboxRequest(name="web", netns="/run/netns/cni-gone"))
    status, result = cni("ADD", args="K8S_POD_NAME=web")
    assert status == 0, result
    (sandbox,) = engine.registry.sandboxes.values()
    assert sandbox.netns_path == NETNS


def test_ifname_already_used_in_the_sandbox(cni, app, engine):
    engine.create_network(NetworkRequest.build("back", subnet="10.90.0.0/24"))
    assert cni("ADD")[0] == 0
    status, err = cni("ADD", name="back")  # eth0 again
    assert status == 1 and err["code"] == 7
    assert "already has an interface eth0" in err["details"]


# --- CNI 1.1: STATUS and GC ---


def test_status_is_ready_only_when_an_add_could_succeed(cni, app, short_tmp):
    assert cni("STATUS", cniVersion="1.1.0") == (0, None)  # no container: none needed
    status, err = cni("STATUS", cniVersion="1.1.0", network="nope")
    assert status == 1 and err["code"] == 50 and err["msg"] == "unknown network nope"
    assert cni("STATUS", cniVersion="1.1.0", network="nope", create=True) == (0, None)
    sock = f"{short_tmp}/nothing.sock"
    status, err = cni("STATUS", cniVersion="1.1.0", socket=sock)
    assert status == 1 and err["code"] == 50 and err["msg"] == f"cannot reach dnsd at {sock}"
    status, err = cni("STATUS")  # a 1.0.0 configuration has no STATUS
    assert status == 1 and err["code"] == 1 and "STATUS needs 1.1.0" in err["details"]


def test_gc_takes_down_only_this_networks_unlisted_attachments(cni, app, engine, kernel):
    other_cid, stranger_cid = "b" * 64, "c" * 64
    for path in ("/run/netns/cni-test-2", "/run/netns/cni-test-3"):
        kernel.add_foreign_netns(path)
    assert cni("ADD", cniVersion="1.1.0", args="K8S_POD_NAME=kept")[0] == 0
    netns2 = "/run/netns/cni-test-2"
    assert (
        cni("ADD", cniVersion="1.1.0", args="K8S_POD_NAME=gone", cid=other_cid, netns=netns2)[0]
        == 0
    )
    # The same dnsd network through another CNI network's configuration: not ours to collect.
    status, _ = cni(
        "ADD", name="alt", network="app", cid=stranger_cid, netns="/run/netns/cni-test-3"
    )
    assert status == 0
    engine.create_sandbox(SandboxRequest(name="api-made", network_mode="app"))  # no labels
    labels = engine.registry.find_sandbox("kept").labels
    assert dict(labels) == {"dnsd.cni.container-id": CID, "dnsd.cni.network": "app"}

    valid = [{"containerID": CID, "ifname": "eth0"}, {"containerID": "x" * 64, "ifname": "eth0"}]
    assert cni("GC", cniVersion="1.1.0", **{"cni.dev/valid-attachments": valid}) == (0, None)
    names = sorted(s.name for s in engine.registry.sandboxes.values())
    assert names == ["api-made", "c" * 12, "kept"]
    # A listed container on another interface is not this attachment.
    valid = [{"containerID": CID, "ifname": "net9"}]
    assert cni("GC", cniVersion="1.1.0", **{"cni.dev/attachments": valid}) == (0, None)
    assert sorted(s.name for s in engine.registry.sandboxes.values()) == ["api-made", "c" * 12]

    status, err = cni("GC", cniVersion="1.1.0")
    assert status == 1 and err["code"] == 7 and "cni.dev/valid-attachments" in err["details"]
    bad = [{"ifname": "eth0"}]
    status, err = cni("GC", cniVersion="1.1.0", **{"cni.dev/valid-attachments": bad})
    assert status == 1 and err["code"] == 7 and "is not {containerID, ifname}" in err["details"]
