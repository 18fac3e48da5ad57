"""Result shapes against the CNI spec's own examples (1.0.0 and 0.4.0), and chaining."""

from __future__ import annotations

import copy

import pytest

from dnsd.cni.result import Dns, attachment_result, shape_for

# The bridge plugin's result in the spec's "Add example" (SPEC.md, 1.0.0).
SPEC_100_RESULT = {
    "cniVersion": "1.0.0",
    "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2}],
    "routes": [{"dst": "0.0.0.0/0"}],
    "interfaces": [
        {"name": "cni0", "mac": "00:11:22:33:44:55"},
        {"name": "veth3243", "mac": "55:44:33:22:11:11"},
        {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"},
    ],
    "dns": {"nameservers": ["10.1.0.1"]},
}

# The bridge plugin's prevResult in the 0.4.0 spec's network configuration list example.
SPEC_040_RESULT = {
    "cniVersion": "0.4.0",
    "ips": [{"version": "4", "address": "10.0.0.5/32", "interface": 2}],
    "interfaces": [
        {"name": "cni0", "mac": "00:11:22:33:44:55"},
        {"name": "veth3243", "mac": "55:44:33:22:11:11"},
        {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"},
    ],
    "dns": {"nameservers": ["10.1.0.1"]},
}


def endpoint(**over) -> dict:
    """One entry of `GET /sandboxes/{name}` .Networks, as the daemon answers it."""
    base = {
        "InterfaceName": "eth0",
        "HostInterfaceName": "veth3243",
        "MacAddress": "99:88:77:66:55:44",
        "IPAddress": "10.1.0.5",
        "IPPrefixLen": 16,
        "Gateway": "10.1.0.1",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPv6Gateway": "",
        "DefaultRoute": False,
    }
    return {**base, **over}


def test_the_spec_100_example_after_a_bridge_in_the_chain():
    # A plugin before us contributed the bridge and the default route: we add the veth and
    # the sandbox interface, and our address points at index 2, as in the spec.
    prev = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "cni0", "mac": "00:11:22:33:44:55"}],
        "routes": [{"dst": "0.0.0.0/0"}],
    }
    got = attachment_result(
        "1.0.0",
        endpoint=endpoint(),
        netns="/var/run/netns/blue",
        dns=Dns(nameservers=("10.1.0.1",)),
        host_mac="55:44:33:22:11:11",
        prev_result=prev,
    )
    assert got == SPEC_100_RESULT


def test_the_spec_040_example_has_version_in_ips():
    prev = {"cniVersion": "0.4.0", "interfaces": [{"name": "cni0", "mac": "00:11:22:33:44:55"}]}
    got = attachment_result(
        "0.4.0",
        endpoint=endpoint(IPAddress="10.0.0.5", IPPrefixLen=32, Gateway=""),
        netns="/var/run/netns/blue",
        dns=Dns(nameservers=("10.1.0.1",)),
        host_mac="55:44:33:22:11:11",
        prev_result=prev,
    )
    (ip,) = got.pop("ips")
    assert ip.pop("gateway") == ""  # the spec example leaves it out; dnsd always has one
    assert {**got, "ips": [ip], "routes": []} == {**SPEC_040_RESULT, "routes": []}


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
def test_alone_dual_stack_with_the_default_route(version):
    got = attachment_result(
        version,
        endpoint=endpoint(
            GlobalIPv6Address="fd00:1::5",
            GlobalIPv6PrefixLen=64,
            IPv6Gateway="fd00:1::1",
            DefaultRoute=True,
        ),
        netns="/proc/42/ns/net",
        dns=Dns.from_resolv_conf("nameserver 127.0.0.11\nsearch corp.test\noptions ndots:0\n"),
        host_mac=None,
    )
    legacy = version != "1.0.0"
    assert got["cniVersion"] == version
    assert got["interfaces"] == [
        {"name": "veth3243"},  # the host side when its MAC cannot be read
        {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/proc/42/ns/net"},
    ]
    v4 = {"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 1}
    v6 = {"address": "fd00:1::5/64", "gateway": "fd00:1::1", "interface": 1}
    if legacy:
        v4, v6 = {**v4, "version": "4"}, {**v6, "version": "6"}
    assert got["ips"] == [v4, v6]
    assert got["routes"] == [
        {"dst": "0.0.0.0/0", "gw": "10.1.0.1"},
        {"dst": "::/0", "gw": "fd00:1::1"},
    ]
    assert got["dns"] == {
        "nameservers": ["127.0.0.11"],
        "search": ["corp.test"],
        "options": ["ndots:0"],
    }


def test_prev_result_is_kept_whole_and_not_modified():
    prev = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "tap0", "mac": "02:00:00:00:00:01", "sandbox": "/x"}],
        "ips": [{"address": "192.0.2.7/24", "interface": 0}],
        "routes": [{"dst": "198.51.100.0/24", "gw": "192.0.2.1"}],
        "dns": {"nameservers": ["192.0.2.53"], "domain": "corp.test", "search": ["a.test"]},
        "x-vendor": {"kept": True},
    }
    before = copy.deepcopy(prev)
    got = attachment_result(
        "1.0.0", endpoint=endpoint(), netns="/x", dns=Dns(search=("b.test",)), prev_result=prev
    )
    assert prev == before
    assert got["interfaces"][0] == prev["interfaces"][0]
    assert got["ips"][0] == prev["ips"][0] and got["ips"][1]["interface"] == 2
    assert got["routes"] == prev["routes"]
    assert got["x-vendor"] == {"kept": True}
    assert got["dns"] == {
        "nameservers": ["127.0.0.11", "192.0.2.53"],
        "domain": "corp.test",
        "search": ["b.test", "a.test"],
    }


def test_shape_for_converts_between_layouts_both_ways():
    legacy = shape_for("0.4.0", SPEC_100_RESULT)
    assert legacy["ips"] == [
        {"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2, "version": "4"}
    ]
    assert shape_for("1.0.0", legacy) == SPEC_100_RESULT
