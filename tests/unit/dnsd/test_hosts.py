"""/etc/hosts rendering, against the files Docker 20.10 wrote (docker-files.md)."""

from __future__ import annotations

import pytest

from dnsd.sandbox_files.hosts import FIXED_BLOCK, own_names, render_hosts
from netcore.errors import InvalidArgument
from netcore.model import Sandbox

# Typed in from docker-files.md (tabs as Docker wrote them), not derived from FIXED_BLOCK.
DOCKER_FIXED = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


def sandbox(name: str = "cli", id_prefix: str = "04690683e4f3", **kw) -> Sandbox:
    return Sandbox(
        id=id_prefix + "0" * (64 - len(id_prefix)),
        name=name,
        netns_path=f"/run/netns/{name}",
        owned=True,
        **kw,
    )


def test_fixed_block_is_dockers() -> None:
    assert FIXED_BLOCK == DOCKER_FIXED


def test_without_hostname_lists_short_id_and_name() -> None:
    # Docker: `172.17.0.5\t04690683e4f3`; we add the sandbox name after the short id.
    assert (
        render_hosts(sandbox(), ["172.17.0.5"]) == DOCKER_FIXED + "172.17.0.5\t04690683e4f3 cli\n"
    )


def test_with_hostname() -> None:
    got = render_hosts(sandbox("db", hostname="dbhost"), ["172.17.0.4"])
    assert got == DOCKER_FIXED + "172.17.0.4\tdbhost db\n"


def test_hostname_equal_to_name_is_listed_once() -> None:
    got = render_hosts(sandbox("web1", hostname="Web1"), ["172.17.0.2"])
    assert got == DOCKER_FIXED + "172.17.0.2\tWeb1\n"


def test_extra_hosts_before_own_line_and_fqdn_hostname() -> None:
    # Docker: --add-host foo.example:198.51.100.7 --add-host bar:198.51.100.8
    #         --hostname myhost --domainname example.test
    sb = sandbox(
        "f_addhost",
        hostname="myhost.example.test",
        extra_hosts=(("foo.example", "198.51.100.7"), ("bar", "198.51.100.8")),
    )
    assert render_hosts(sb, ["172.17.0.17"]) == DOCKER_FIXED + (
        "198.51.100.7\tfoo.example\n"
        "198.51.100.8\tbar\n"
        "172.17.0.17\tmyhost.example.test myhost f_addhost\n"
    )


def test_dual_stack_and_two_networks_one_line_per_address() -> None:
    sb = sandbox("v6a", id_prefix="189c45f4d67f")
    got = render_hosts(sb, ["172.20.0.2", "fd6e:a1b2:c3d4:1::2", "172.18.0.3"])
    assert got == DOCKER_FIXED + (
        "172.20.0.2\t189c45f4d67f v6a\n"
        "fd6e:a1b2:c3d4:1::2\t189c45f4d67f v6a\n"
        "172.18.0.3\t189c45f4d67f v6a\n"
    )


def test_mode_none_is_fixed_block_only() -> None:
    sb = sandbox("none1", mode="none", hostname="h", extra_hosts=(("foo", "192.0.2.1"),))
    assert render_hosts(sb, []) == DOCKER_FIXED


def test_mode_host_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="host's /etc/hosts"):
        render_hosts(sandbox(mode="host"), [])


@pytest.mark.parametrize(
    ("kw", "addresses", "field"),
    [
        ({"extra_hosts": (("foo", "host-gateway"),)}, [], "extra_hosts"),
        ({"extra_hosts": (("bad name\n127.0.0.1 x", "192.0.2.1"),)}, [], "extra_hosts"),
        ({"hostname": "a\tb"}, ["192.0.2.1"], "hostname"),
        ({}, ["192.0.2.300"], "addresses"),
    ],
)
def test_hostile_values_are_refused(kw, addresses, field) -> None:
    with pytest.raises(InvalidArgument, match=f"^{field}: "):
        render_hosts(sandbox(**kw), addresses)


def test_own_names() -> None:
    assert own_names(sandbox("web", hostname="a.b.c")) == ("a.b.c", "a", "web")
    assert own_names(sandbox("a", hostname="a.b")) == ("a.b", "a")
