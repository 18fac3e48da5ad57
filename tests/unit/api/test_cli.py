"""`python3 -m dnsd` against the app on a unix socket, plus the pure parts of the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from dnsd import cli
from dnsd.api import create_app
from dnsd.cli import commands
from dnsd.cli.api_client import ApiClient, port_bindings
from dnsd.config import DaemonConfig
from dnsd.health.state import Health
from netcore.engine import Engine
from netcore.requests import NetworkRequest

ROOT = Path(__file__).resolve().parents[3]


def dnsd(served: Any, *args: str, env: dict[str, str] | None = None) -> CompletedProcess[str]:
    """Run `python3 -m dnsd ARGS` against `served` (a ServedApp on a unix socket, or None)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DNSD_")}
    environ["PYTHONPATH"] = str(ROOT)
    if served is not None:
        environ["DNSD_SOCKET"] = served.socket_path
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "dnsd", *args],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def ok(result: CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_network_lifecycle(served, engine: Engine):
    net_id = ok(dnsd(
        served, "network", "create", "--subnet", "10.80.0.0/24", "--gateway", "10.80.0.254",
        "--ip-range", "10.80.0.128/25", "--internal", "--opt",
        "com.docker.network.bridge.enable_icc=false", "--label", "team=web", "--dns-ttl", "30",
        "front",
    )).strip()  # fmt: skip
    network = engine.registry.networks[net_id]
    assert str(network.ipv4.subnet) == "10.80.0.0/24" and str(network.ipv4.gateway) == "10.80.0.254"
    assert str(network.ipv4.ip_range) == "10.80.0.128/25"
    assert network.internal and not network.icc and network.dns_ttl == 30
    assert dict(network.labels) == {"team": "web"}

    table = ok(dnsd(served, "network", "ls")).splitlines()
    assert table[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE", "SUBNET", "SANDBOXES"]
    assert any(line.split()[:2] == [net_id[:12], "front"] for line in table[1:])
    assert {line.split()[1] for line in table[1:]} == {"bridge", "front", "host", "none"}
    listed = json.loads(ok(dnsd(served, "network", "ls", "--format", "json", "--filter",
                                "label=team=web")))  # fmt: skip
    assert [n["Name"] for n in listed] == ["front"]
    assert ok(dnsd(served, "network", "ls", "-q", "-f", "name=fro")).split() == [net_id[:12]]
    inspected = json.loads(ok(dnsd(served, "network", "inspect", "front")))
    assert inspected[0]["Id"] == net_id and inspected[0]["Internal"] is True

    ok(dnsd(served, "sandbox", "create", "box"))  # on the default `bridge` network, as Docker
    ok(dnsd(served, "network", "connect", "--alias", "www", "--ip", "10.80.0.200", "front", "box"))
    (endpoint,) = [e for e in engine.registry.endpoints.values() if e.network_id == net_id]
    assert str(endpoint.ipv4) == "10.80.0.200" and endpoint.aliases == ("www",)
    busy = dnsd(served, "network", "rm", "front")
    assert busy.returncode == 1 and "disconnect them first" in busy.stderr
    ok(dnsd(served, "network", "disconnect", "front", "box"))
    assert [e.network_id for e in engine.registry.endpoints.values()] == [
        n.id for n in engine.registry.networks.values() if n.name == "bridge"
    ]
    assert ok(dnsd(served, "network", "rm", "front")).split() == ["front"]
    assert net_id not in engine.registry.networks


def test_network_prune(served, engine: Engine):
    engine.create_network(NetworkRequest.build("unused1"))
    engine.create_network(NetworkRequest.build("unused2", labels={"keep": "1"}))
    out = ok(dnsd(served, "network", "prune", "-f", "--filter", "label!=keep"))
    assert out.split() == ["Deleted", "Networks:", "unused1"]
    out = ok(dnsd(served, "network", "prune", "--force", "--format", "json"))
    assert json.loads(out) == {"NetworksDeleted": ["unused2"]}


def test_errors_go_to_stderr_with_a_non_zero_status(served, short_tmp):
    result = dnsd(served, "network", "rm", "nosuch", "bridge")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "Error: network nosuch not found",
        "Error: bridge is a pre-defined network and cannot be removed",
    ]
    result = dnsd(served, "network", "create", "a;b")
    assert result.returncode == 1 and "Name" in result.stderr
    result = dnsd(served, "sandbox", "inspect", "ghost")
    assert result.returncode == 1 and "No such sandbox: ghost" in result.stderr
    result = dnsd(served, "sandbox", "create", "x", "--publish", "80")
    assert result.returncode == 2 and "--publish" in result.stderr
    result = dnsd(None, "network", "ls", "--api-socket", f"{short_tmp}/none.sock")
    assert result.returncode == 1 and "cannot reach dnsd" in result.stderr
    result = dnsd(served, "network", "frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_sandbox_lifecycle(served, engine: Engine):
    engine.create_network(NetworkRequest.build("apps", subnet="10.81.0.0/24"))
    box_id = ok(dnsd(
        served, "sandbox", "create", "web", "--network", "apps", "--alias", "www",
        "--ip", "10.81.0.7", "--hostname", "web.example", "--dns", "9.9.9.9",
        "--dns-search", "corp.example", "--dns-option", "ndots:1", "--add-host", "db:10.0.0.9",
        "-p", "8080:80", "--publish", "127.0.0.1:5353:53/udp", "--label", "team=web",
    )).strip()  # fmt: skip
    sandbox = engine.registry.sandboxes[box_id]
    assert sandbox.labels == (("team", "web"),)
    assert sandbox.hostname == "web.example" and sandbox.dns == ("9.9.9.9",)
    assert sandbox.dns_search == ("corp.example",) and sandbox.dns_options == ("ndots:1",)
    assert sandbox.extra_hosts == (("db", "10.0.0.9"),)
    assert {(p.host_port, p.container_port, p.proto, str(p.host_ip)) for p in sandbox.ports} == {
        (8080, 80, "tcp", "None"),
        (5353, 53, "udp", "127.0.0.1"),
    }
    (endpoint,) = engine.registry.endpoints_of(box_id)
    assert str(endpoint.ipv4) == "10.81.0.7" and endpoint.aliases == ("www",)
    ok(dnsd(served, "sandbox", "create", "side", "--network", "container:web"))

    table = ok(dnsd(served, "sandbox", "ls")).splitlines()
    assert table[0].split() == ["SANDBOX", "ID", "NAME", "MODE", "NETWORKS", "HEALTH", "NETNS"]
    rows = {line.split()[1]: line.split() for line in table[1:]}
    assert rows["web"][2:] == ["bridge", "apps=10.81.0.7", "-", "/run/netns/web"]
    assert rows["side"][2:4] == ["container:web", "apps=10.81.0.7"]
    listed = json.loads(ok(dnsd(served, "sandbox", "ls", "--format", "json")))
    assert sorted(s["Name"] for s in listed) == ["side", "web"]
    (inspected,) = json.loads(ok(dnsd(served, "sandbox", "inspect", box_id[:10])))
    assert inspected["Networks"]["apps"]["IPAddress"] == "10.81.0.7"

    refused = dnsd(served, "sandbox", "rm", "web")
    assert refused.returncode == 1 and "side" in refused.stderr
    assert ok(dnsd(served, "sandbox", "rm", "side", "web")).split() == ["side", "web"]
    assert not engine.registry.sandboxes and not engine.registry.endpoints


class _Starting:
    def health(self, sandbox_id: str) -> Health:
        return Health()


def test_sandbox_health_flags_and_column(engine: Engine, serve_app, short_tmp):
    served = serve_app(create_app(engine, version="t", health=_Starting()))
    served.start_unix(f"{short_tmp}/h.sock")
    box_id = ok(dnsd(
        served, "sandbox", "create", "web", "--health-http", "8080/healthz",
        "--health-interval", "1m30s", "--health-timeout", "500ms", "--health-retries", "2",
        "--health-start-period", "2s",
    )).strip()  # fmt: skip
    check = engine.registry.sandboxes[box_id].healthcheck
    assert check is not None and check.test == ("HTTP", "8080", "/healthz")
    assert (check.interval_s, check.timeout_s, check.retries, check.start_period_s) == (
        90,
        0.5,
        2,
        2,
    )
    ok(dnsd(served, "sandbox", "create", "db", "--health-cmd", "pg_isready", "--health-user", "pg"))
    db = engine.registry.find_sandbox("db").healthcheck
    assert db is not None and db.test == ("CMD-SHELL", "pg_isready") and db.user == "pg"
    ok(dnsd(served, "sandbox", "create", "plain"))
    rows = {r.split()[1]: r.split() for r in ok(dnsd(served, "sandbox", "ls")).splitlines()[1:]}
    assert rows["web"][-2] == "starting" and rows["plain"][-2] == "starting"
    for bad, message in [
        (["--health-tcp", "80", "--health-cmd", "true"], "one of"),
        (["--health-interval", "2s"], "need --health-cmd"),
        (["--health-tcp", "80", "--health-interval", "2 s"], "like 2s"),
    ]:
        result = dnsd(served, "sandbox", "create", "x", *bad)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    result = dnsd(
        served, "sandbox", "create", "x", "--health-tcp", "80", "--health-interval", "50ms"
    )
    assert result.returncode == 1 and "Healthcheck.Interval" in result.stderr


def test_exec_enters_the_namespace_with_the_sandbox_files(served, engine, short_tmp):
    """A stand-in `nsenter` on PATH prints what it was asked to run."""
    fake = Path(short_tmp, "bin")
    fake.mkdir()
    (fake / "nsenter").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    (fake / "nsenter").chmod(0o755)
    ok(dnsd(served, "sandbox", "create", "shell"))
    sandbox = next(iter(engine.registry.sandboxes.values()))
    for path in (sandbox.resolv_conf_path, sandbox.hosts_path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Path(path).write_text("# test\n")
    env = {"PATH": f"{fake}:{os.environ['PATH']}"}
    args = ok(dnsd(served, "sandbox", "exec", "shell", "--", "cat", "/etc/resolv.conf", env=env))
    lines = args.splitlines()
    assert lines[:6] == ["--net=/run/netns/shell", "unshare", "--mount", "--propagation",
                         "private", "sh"]  # fmt: skip
    assert lines[-4:] == [sandbox.resolv_conf_path, sandbox.hosts_path, "cat", "/etc/resolv.conf"]
    missing = dnsd(served, "sandbox", "exec", "shell", env=env)
    assert missing.returncode == 2 and "command" in missing.stderr


def test_exec_script_mounts_then_runs(tmp_path):
    """The shell snippet itself, run with `mount` replaced by a recorder."""
    sandbox = {"NetworkMode": "bridge", "NetNS": "/run/netns/x",
               "ResolvConfPath": str(tmp_path / "r"), "HostsPath": str(tmp_path / "h")}  # fmt: skip
    (tmp_path / "r").write_text("")
    (tmp_path / "h").write_text("")
    argv = commands.exec_argv(sandbox, ["echo", "ran", "with spaces"])
    script_args = argv[argv.index("sh") :]
    log = tmp_path / "mounts"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "mount").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    (fake / "mount").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    result = subprocess.run(script_args, env=env, capture_output=True, text=True, check=True)
    assert result.stdout == "ran with spaces\n"
    assert log.read_text().splitlines() == [
        f"--bind {tmp_path / 'r'} /etc/resolv.conf",
        f"--bind {tmp_path / 'h'} /etc/hosts",
    ]
    assert commands.exec_argv({**sandbox, "NetworkMode": "host"}, ["id"]) == ["id"]


def test_tcp_client_sends_the_token(engine, serve_app):
    server = serve_app(create_app(engine, token="t0ken", version="t")).start_tcp()
    address = f"127.0.0.1:{server.port}"
    out = ok(dnsd(None, "network", "ls", "-q", "--api-tcp", address, "--api-token", "t0ken"))
    assert len(out.split()) == 3
    denied = dnsd(None, "network", "ls", "--api-tcp", address, "--api-token", "wrong")
    assert denied.returncode == 1 and "token" in denied.stderr


# --- serve ---


def test_serve_refuses_tcp_without_a_token():
    result = dnsd(None, "serve", "--api-tcp", "0.0.0.0:2375")
    assert result.returncode == 2 and "--api-token" in result.stderr


def test_serve_passes_its_flags_to_the_daemon(monkeypatch):
    seen: list[DaemonConfig] = []
    fake = types.ModuleType("dnsd.daemon")
    fake.run = lambda config: seen.append(config) or 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dnsd.daemon", fake)
    status = cli.main([
        "serve", "--state-dir", "/tmp/s", "--api-socket", "/tmp/s.sock",
        "--api-tcp", "127.0.0.1:2375", "--api-token", "tok", "--upstream", "9.9.9.9",
        "--upstream", "[2620:fe::fe]:53", "--host-resolv-conf", "/tmp/resolv",
        "--no-default-network", "--etc-netns-dir", "/tmp/etc", "--log-level", "debug",
    ])  # fmt: skip
    assert status == 7
    assert seen == [
        DaemonConfig(
            state_dir="/tmp/s", api_socket="/tmp/s.sock", api_tcp="127.0.0.1:2375",
            api_token="tok", upstreams=("9.9.9.9", "[2620:fe::fe]:53"),
            host_resolv_conf="/tmp/resolv", log_level="debug", default_network=False,
            etc_netns_dir="/tmp/etc",
        )
    ]  # fmt: skip
    assert cli.main(["serve", "--upstream", "dns.example"]) == 2
    assert cli.main(["serve", "--api-tcp", "nohost", "--api-token", "x"]) == 2
    assert cli.main(["serve"]) == 7 and seen[-1] == DaemonConfig()


# --- pure helpers ---


def test_port_bindings():
    assert port_bindings(["8080:80", "127.0.0.1:53:53/udp", "81:80"]) == {
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "", "HostPort": "81"}],
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "53"}],
    }
    for bad in ("80", ":80", "1:2:3:4", "8080:"):
        with pytest.raises(ValueError, match="HOST_PORT"):
            port_bindings([bad])


def test_table_aligns_columns():
    assert commands.table(("A", "LONG HEADER"), [("wide cell", "x")]).splitlines() == [
        "A           LONG HEADER",
        "wide cell   x",
    ]


def test_client_quotes_refs_into_one_path_segment(served):
    client = ApiClient(socket_path=served.socket_path)
    with pytest.raises(Exception, match="not found") as info:
        client.network("a/b")
    assert getattr(info.value, "status", None) == 404
