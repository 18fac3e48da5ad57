"""How the plugin reads a runtime's environment and stdin (CNI spec), and its refusals."""

from __future__ import annotations

import json

import pytest

from dnsd.cni.plugin import execute
from dnsd.cni.request import (
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    INVALID_ENVIRONMENT,
    CniError,
    parse_cni_args,
    parse_invocation,
)

CID = "3f4e5d6c7b8a" + "0" * 52


def env(**over) -> dict[str, str]:
    base = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": CID,
        "CNI_NETNS": "/run/netns/cni-1234",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin",
    }
    return {k: v for k, v in {**base, **over}.items() if v is not None}


def conf(**over) -> bytes:
    base = {"cniVersion": "1.0.0", "name": "app", "type": "dnsd"}
    return json.dumps({**base, **over}).encode()


def refusal(environ: dict, stdin: bytes) -> CniError:
    with pytest.raises(CniError) as info:
        parse_invocation(environ, stdin)
    return info.value


def test_podman_invocation():
    # What Podman 4 sends: K8S_POD_NAME is the container name, aliases keyed by network.
    inv = parse_invocation(
        env(CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.89.0.7;MAC=02:42:0A:59:00:07"),
        conf(
            network="backend",
            socket="/tmp/d.sock",
            runtimeConfig={
                "aliases": {"app": ["api", "www"], "other": ["nope"]},
                "portMappings": [
                    {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""},
                    {"hostPort": 5353, "containerPort": 53, "protocol": "UDP",
                     "hostIP": "127.0.0.1"},
                ],
            },
        ),
    )  # fmt: skip
    assert (inv.command, inv.cni_version, inv.ifname) == ("ADD", "1.0.0", "eth0")
    assert inv.netns == "/run/netns/cni-1234" and inv.sandbox_name == "web"
    c = inv.conf
    assert c is not None
    assert (c.name, c.network, c.socket, c.create) == ("app", "backend", "/tmp/d.sock", False)
    assert c.aliases == ("api", "www")
    assert c.publish == ("8080:80/tcp", "127.0.0.1:5353:53/udp")
    assert (c.ipv4, c.ipv6, c.mac) == ("10.89.0.7", None, "02:42:0a:59:00:07")
    assert c.prev_result is None


def test_defaults_and_the_container_id_as_name():
    inv = parse_invocation(env(), conf())
    assert inv.conf is not None
    assert inv.conf.network == "app" and inv.conf.socket == "/run/dnsd/dnsd.sock"
    assert inv.sandbox_name == CID[:12]
    # A pod name that is no valid sandbox name falls back to the id too.
    inv = parse_invocation(env(CNI_ARGS="K8S_POD_NAME=bad name"), conf())
    assert inv.sandbox_name == CID[:12]


def test_ips_capability_and_prev_result_kept():
    prev = {"cniVersion": "0.4.0", "interfaces": [{"name": "x"}]}
    inv = parse_invocation(
        env(),
        conf(
            cniVersion="0.4.0",
            runtimeConfig={"ips": ["10.1.0.9/24", "fd00::9/64"], "mac": "02:00:00:00:00:09"},
            prevResult=prev,
        ),
    )
    assert inv.conf is not None
    assert (inv.conf.ipv4, inv.conf.ipv6) == ("10.1.0.9", "fd00::9")
    assert inv.conf.prev_result == prev


def test_del_needs_no_netns_and_version_needs_no_stdin():
    inv = parse_invocation(env(CNI_COMMAND="DEL", CNI_NETNS=None), conf())
    assert inv.command == "DEL" and inv.netns == ""
    assert parse_invocation({"CNI_COMMAND": "VERSION"}, b"").cni_version == "1.0.0"
    assert parse_invocation({"CNI_COMMAND": "VERSION"}, conf(cniVersion="0.4.0")).cni_version == (
        "0.4.0"
    )


def test_cni_args():
    assert parse_cni_args("IgnoreUnknown=1;;K8S_POD_NAME=a=b") == (
        ("IgnoreUnknown", "1"),
        ("K8S_POD_NAME", "a=b"),
    )
    with pytest.raises(CniError) as info:
        parse_cni_args("IgnoreUnknown")
    assert info.value.code == INVALID_ENVIRONMENT


@pytest.mark.parametrize(
    ("over", "code", "words"),
    [
        ({"CNI_COMMAND": "UP"}, INVALID_ENVIRONMENT, "'UP' is not one of"),
        ({"CNI_COMMAND": None}, INVALID_ENVIRONMENT, "CNI_COMMAND"),
        ({"CNI_CONTAINERID": None, "CNI_NETNS": None}, INVALID_ENVIRONMENT,
         "CNI_CONTAINERID, CNI_NETNS"),
        ({"CNI_CONTAINERID": "-x"}, INVALID_ENVIRONMENT, "starting alphanumeric"),
        ({"CNI_IFNAME": "a-very-long-ifname"}, INVALID_ENVIRONMENT, "CNI_IFNAME"),
        ({"CNI_NETNS": "run/netns/x"}, INVALID_ENVIRONMENT, "absolute path"),
    ],
)  # fmt: skip
def test_bad_environment(over, code, words):
    err = refusal(env(**over), conf())
    assert err.code == code and words in f"{err.msg} {err.details}"


@pytest.mark.parametrize(
    ("fields", "code", "words"),
    [
        ({"cniVersion": "0.2.0"}, INCOMPATIBLE_VERSION, "supports 0.3.0"),
        ({"name": None}, INVALID_CONFIG, "name: required"),
        ({"network": 5}, INVALID_CONFIG, "network: 5 is not a string"),
        ({"network": "a/b"}, INVALID_CONFIG, "network"),
        ({"socket": "dnsd.sock"}, INVALID_CONFIG, "socket: 'dnsd.sock' is not an absolute"),
        ({"create": "yes"}, INVALID_CONFIG, "create: 'yes' is not true or false"),
        ({"runtimeConfig": {"aliases": ["a"]}}, INVALID_CONFIG, "runtimeConfig.aliases"),
        ({"runtimeConfig": {"aliases": {"app": ["bad name"]}}}, INVALID_CONFIG,
         "runtimeConfig.aliases.app"),
        ({"runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 80}]}},
         INVALID_CONFIG, "hostPort and containerPort must be 1-65535"),
        ({"runtimeConfig": {"portMappings": [{"hostPort": 1, "containerPort": 80,
                                              "protocol": "icmp"}]}},
         INVALID_CONFIG, "protocol must be tcp, udp or sctp"),
        ({"runtimeConfig": {"ips": ["10.1.0.300/24"]}}, INVALID_CONFIG, "is not an IP"),
        ({"runtimeConfig": {"mac": "zz"}}, INVALID_CONFIG, "is not a MAC address"),
        ({"prevResult": []}, INVALID_CONFIG, "prevResult: must be an object"),
    ],
)  # fmt: skip
def test_bad_config_fields_name_the_field(fields, code, words):
    data = json.loads(conf())
    for key, value in fields.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    err = refusal(env(), json.dumps(data).encode())
    assert err.code == code and words in err.details


def test_check_needs_040():
    err = refusal(env(CNI_COMMAND="CHECK"), conf(cniVersion="0.3.1"))
    assert err.code == INCOMPATIBLE_VERSION and "CHECK needs 0.4.0" in err.details


def test_errors_are_the_spec_json_with_exit_1():
    status, out = execute(env(), b"{not json")
    assert status == 1
    assert json.loads(out) == {
        "cniVersion": "1.0.0",
        "code": 6,
        "msg": "cannot decode the network configuration",
        "details": json.loads(out)["details"],
    }
    status, out = execute(env(), conf(cniVersion="0.4.0", create=1))
    assert status == 1
    assert json.loads(out) == {
        "cniVersion": "0.4.0",
        "code": 7,
        "msg": "invalid network configuration",
        "details": "create: 1 is not true or false",
    }


def test_version_answer():
    status, out = execute({"CNI_COMMAND": "VERSION"}, conf(cniVersion="0.4.0"))
    assert status == 0
    assert json.loads(out) == {
        "cniVersion": "0.4.0",
        "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    }


def test_status_and_gc_are_about_the_network_not_a_container():
    bare = env(CNI_CONTAINERID=None, CNI_NETNS=None, CNI_IFNAME=None)
    inv = parse_invocation({**bare, "CNI_COMMAND": "STATUS"}, conf(cniVersion="1.1.0"))
    assert (inv.command, inv.container_id, inv.conf.name) == ("STATUS", "", "app")
    valid = [{"containerID": CID, "ifname": "eth0"}, {"containerID": "other"}]
    stdin = conf(cniVersion="1.1.0", **{"cni.dev/valid-attachments": valid})
    inv = parse_invocation({**bare, "CNI_COMMAND": "GC"}, stdin)
    assert inv.valid_attachments == {(CID, "eth0"), ("other", "")}
    error = refusal({**bare, "CNI_COMMAND": "GC"}, conf())  # 1.0.0 has no GC
    assert error.code == INCOMPATIBLE_VERSION and "GC needs 1.1.0 or later" in error.details
    stdin = conf(cniVersion="1.1.0", **{"cni.dev/valid-attachments": {"a": 1}})
    error = refusal({**bare, "CNI_COMMAND": "GC"}, stdin)
    assert error.code == INVALID_CONFIG and "must be a list" in error.details
