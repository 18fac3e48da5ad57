"""systemd-resolved registration: which calls for which snapshot change, as exact command lines,
and the registrar running them (with a recording runner: no bus is touched)."""

from __future__ import annotations

import logging
import subprocess
from ipaddress import ip_address

import pytest

from dnsd.hostdns import registrar as registrar_module
from dnsd.hostdns.listener import HostAddress
from dnsd.hostdns.registrar import ResolvedRegistrar
from dnsd.hostdns.resolved import (
    Call,
    LinkSettings,
    busctl_argv,
    plan_calls,
    resolvectl_argv,
    wanted_links,
)
from tests.support.snapshots import network, snapshot

APP = network("a" * 64, "app", "br-app", "10.1.0.0/24", v6="fd00:1::/64")
DB = network("b" * 64, "db", "br-db", "10.2.0.0/24")
MANAGER = [
    "busctl",
    "call",
    "org.freedesktop.resolve1",
    "/org/freedesktop/resolve1",
    "org.freedesktop.resolve1.Manager",
]


def _at(*addresses: str, port: int = 53) -> list[HostAddress]:
    return [HostAddress(ip_address(a), port) for a in addresses]


def test_wanted_links_are_the_networks_whose_gateway_is_served_on_53():
    snap = snapshot([APP, DB], [], [])
    assert wanted_links(snap, _at("127.0.0.153")) == {}
    assert wanted_links(snap, _at("10.1.0.1", "fd00:1::1"), "corp") == {
        "br-app": LinkSettings("br-app", ("10.1.0.1", "fd00:1::1"), ("app", "app.corp"))
    }
    assert wanted_links(snap, _at("10.2.0.1", port=5353)) == {}  # SetLinkDNS has no port


def test_plan_sets_new_links_reverts_gone_ones_and_skips_unchanged():
    app = LinkSettings("br-app", ("10.1.0.1",), ("app",))
    db = LinkSettings("br-db", ("10.2.0.1",), ("db",))
    assert plan_calls({}, {"br-app": app}) == [
        Call("dns", "br-app", ("10.1.0.1",)),
        Call("domain", "br-app", ("~app",)),
    ]
    assert plan_calls({"br-app": app}, {"br-app": app}) == []
    assert plan_calls({"br-app": app, "br-db": db}, {"br-app": app}) == [Call("revert", "br-db")]


def test_resolvectl_command_lines():
    assert resolvectl_argv(Call("dns", "br-app", ("10.1.0.1", "fd00:1::1"))) == [
        "resolvectl", "dns", "br-app", "10.1.0.1", "fd00:1::1",
    ]  # fmt: skip
    assert resolvectl_argv(Call("domain", "br-app", ("~app", "~app.corp"))) == [
        "resolvectl", "domain", "br-app", "~app", "~app.corp",
    ]  # fmt: skip
    assert resolvectl_argv(Call("revert", "br-app")) == ["resolvectl", "revert", "br-app"]


def test_busctl_messages():
    assert busctl_argv(Call("dns", "br-app", ("10.1.0.1", "fd00:1::1")), 7) == [
        *MANAGER, "SetLinkDNS", "ia(iay)", "7", "2",
        "2", "4", "10", "1", "0", "1",
        "10", "16", "253", "0", "0", "1", *["0"] * 11, "1",
    ]  # fmt: skip
    assert busctl_argv(Call("domain", "br-app", ("~app",)), 7) == [
        *MANAGER, "SetLinkDomains", "ia(sb)", "7", "1", "app", "true",
    ]  # fmt: skip
    assert busctl_argv(Call("revert", "br-app"), 7) == [*MANAGER, "RevertLink", "i", "7"]
    with pytest.raises(ValueError, match="unknown"):
        busctl_argv(Call("flush", "br-app"), 7)


class Bus:
    """A recording runner answering the bus queries the registrar makes."""

    def __init__(self, *, owned: bool = True, pid: int = 4242, refuse: bool = False) -> None:
        self.owned, self.pid, self.refuse = owned, pid, refuse
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        out, code, err = "", 0, ""
        if "NameHasOwner" in argv:
            out = f"b {'true' if self.owned else 'false'}\n"
        elif "GetConnectionUnixProcessID" in argv:
            out = f"u {self.pid}\n"
        elif self.refuse:
            code, err = 1, "Access denied"
        return subprocess.CompletedProcess(argv, code, out, err)


@pytest.fixture
def tools(monkeypatch):
    """busctl 'installed', resolved in our namespace, bridges with index 9."""
    found = {"busctl": "/usr/bin/busctl", "resolvectl": "/usr/bin/resolvectl"}
    monkeypatch.setattr(registrar_module.shutil, "which", found.get)
    monkeypatch.setattr(ResolvedRegistrar, "same_netns", staticmethod(lambda pid: pid == 4242))
    monkeypatch.setattr(ResolvedRegistrar, "ifindex", staticmethod(lambda name: 9))
    return found


def test_registrar_sets_and_reverts_through_dbus(tools):
    bus = Bus()
    registrar = ResolvedRegistrar(bus)
    assert registrar.start() and registrar.tool == "busctl"
    bus.calls.clear()
    app = {"br-app": LinkSettings("br-app", ("10.1.0.1",), ("app",))}
    registrar.apply(app)
    registrar.apply(app)  # nothing changed: no call
    assert [c[5] for c in bus.calls] == ["SetLinkDNS", "SetLinkDomains"]
    registrar.close()
    assert bus.calls[-1] == [*MANAGER, "RevertLink", "i", "9"]


def test_registrar_without_resolved_logs_one_line_and_calls_nothing(tools, caplog):
    caplog.set_level(logging.INFO, logger="dnsd.hostdns.registrar")
    bus = Bus(owned=False)
    registrar = ResolvedRegistrar(bus)
    assert not registrar.start()
    registrar.apply({"br-app": LinkSettings("br-app", ("10.1.0.1",), ("app",))})
    assert len(bus.calls) == 1  # only the NameHasOwner question
    assert [r.message for r in caplog.records] == [
        "systemd-resolved is not running (no org.freedesktop.resolve1 on the system bus): "
        "not registering networks with it"
    ]


def test_registrar_leaves_a_resolved_of_another_namespace_alone(tools):
    bus = Bus(pid=1)  # resolved runs, but not in our network namespace
    registrar = ResolvedRegistrar(bus)
    assert not registrar.start()
    registrar.apply({"br-app": LinkSettings("br-app", ("10.1.0.1",), ("app",))})
    assert not any("SetLinkDNS" in c for c in bus.calls)


def test_a_refused_call_warns_once(tools, caplog):
    bus = Bus(refuse=True)
    registrar = ResolvedRegistrar(bus)
    assert registrar.start()
    caplog.set_level(logging.WARNING, logger="dnsd.hostdns.registrar")
    registrar.apply({"br-app": LinkSettings("br-app", ("10.1.0.1",), ("app",))})
    registrar.apply({"br-db": LinkSettings("br-db", ("10.2.0.1",), ("db",))})
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Access denied" in warnings[0]


def test_resolvectl_fallback_without_busctl(tools):
    del tools["busctl"]
    bus = Bus()
    registrar = ResolvedRegistrar(bus)
    assert registrar.start() and registrar.tool == "resolvectl"
    registrar.apply({"br-app": LinkSettings("br-app", ("10.1.0.1",), ("app",))})
    assert bus.calls[1:] == [
        ["resolvectl", "dns", "br-app", "10.1.0.1"],
        ["resolvectl", "domain", "br-app", "~app"],
    ]
