"""What an operator meets: help text everywhere, `--version`, `dnsd status`, `/info` through the
real `docker info`, 501 for Docker endpoints we do not serve, `/metrics`, the access log,
sd_notify and the state-dir lock."""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from dnsd import __version__
from dnsd.api import create_app
from dnsd.cli.api_client import ApiClient, ApiError
from dnsd.cli.parser import build_parser
from dnsd.cli.status import status_lines
from dnsd.metrics.collector import Sources, build_registry
from dnsd.metrics.counters import ApiStats, StatsBook
from dnsd.sdnotify import notify
from dnsd.statedir import StateDirBusy, StateDirLock
from tests.support.engine import TEST_VERSION
from tests.support.requires import require_binary

ROOT = Path(__file__).resolve().parents[3]
DOCKER = require_binary(
    "docker", "apt-get install docker.io", also=("/usr/bin/docker", "/usr/local/bin/docker")
)
FACTS = {
    "Pid": 4242, "Store": "sqlite:///var/lib/dnsd/state.db", "Listeners": 3,
    "Upstreams": [{"Address": "198.51.100.53:53", "Via": "sandbox", "Healthy": False,
                   "Queries": 7, "Failures": 2}],
    "ReplyCacheEntries": 12, "ForwardsInFlight": 1, "UptimeSeconds": 3725.0, "Metrics": True,
    "MetricsListen": "127.0.0.1:9153", "QueryLog": "/var/log/dnsd/queries.jsonl",
    "Health": {"Checks": {"healthy": 3, "unhealthy": 1}, "FailOpenNames": 2, "WorkerPid": 4243,
               "WorkerRestarts": 1},
    "HostDns": ["127.0.0.153:53", "10.1.0.1:53"], "UdpLoop": "C",
}  # fmt: skip


def subcommands(parser: argparse.ArgumentParser, path: str = "dnsd"):
    """Every (name, parser) under `parser`, itself included."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if sub is not parser:
                    yield from subcommands(sub, f"{path} {name}")


def test_every_option_and_argument_of_every_command_has_help():
    missing = []
    for path, parser in subcommands(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, f"without help text: {missing}"


def test_every_serve_option_shows_its_default():
    (serve,) = [p for path, p in subcommands(build_parser()) if path == "dnsd serve"]
    formatter = serve._get_formatter()
    without = [
        "/".join(action.option_strings)
        for action in serve._actions
        if action.option_strings
        and not isinstance(action, argparse._HelpAction)
        and "default" not in formatter._format_action(action)
    ]
    assert not without, f"dnsd serve options whose help shows no default: {without}"
    text = serve.format_help()
    assert "--etc-netns-dir PATH" in text and "(default: /etc/netns)" in text


def test_readme_lists_every_serve_option():
    readme = (ROOT / "README.md").read_text()
    (serve,) = [p for path, p in subcommands(build_parser()) if path == "dnsd serve"]
    options = [a.option_strings[0] for a in serve._actions if a.option_strings]
    missing = [
        o for o in options if o != "-h" and not re.search(rf"(?<![\w-]){o}(?![\w-])", readme)
    ]
    assert not missing, f"README's serve options miss {missing}"


def test_version_flag():
    out = subprocess.run(
        [sys.executable, "-m", "dnsd", "--version"], cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=True,
    ).stdout  # fmt: skip
    assert out.strip() == f"dnsd {__version__}"


def test_sandbox_create_defaults_to_the_bridge_network():
    args = build_parser().parse_args(["sandbox", "create", "web"])
    assert args.network == "bridge"
    assert build_parser().parse_args(["sandbox", "create", "--network", "none", "w"]).network == (
        "none"
    )


def test_status_lines_say_what_an_operator_asks_first():
    info = {"ServerVersion": "1.2.3", "Dnsd": {"Networks": 2, "Sandboxes": 5, "Endpoints": 6,
                                               **FACTS}}  # fmt: skip
    text = "\n".join(status_lines(info))
    assert text.splitlines()[0] == "dnsd 1.2.3, pid 4242, up 1h02m05s"
    assert "2 networks, 5 sandboxes, 6 endpoints, 3 dns listeners" in text
    assert "198.51.100.53:53 via sandbox: FAILING (asked last), 7 queries, 2 failures" in text
    assert "http://127.0.0.1:9153/metrics" in text and "/var/log/dnsd/queries.jsonl" in text
    assert (
        "health:       4 checks (3 healthy, 1 unhealthy, 0 starting), 2 names failing open, "
        "probe worker pid 4243, 1 restarts"
    ) in text
    assert "host dns:     127.0.0.153:53, 10.1.0.1:53" in text
    assert "udp loop:     C accelerator" in text
    empty = "\n".join(
        status_lines(
            {"ServerVersion": "1", "Dnsd": {"Upstreams": [], "HostDns": [], "UdpLoop": "Python"}}
        )
    )
    assert "none (forwarded queries get SERVFAIL)" in empty and "host dns:     off" in empty
    assert "udp loop:     Python (slower: install gcc and python3-dev, reinstall dnsd)" in empty


@pytest.fixture
def docker_env(short_tmp):
    config_dir = os.path.join(short_tmp, "docker-config")
    os.makedirs(config_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    return env | {"DOCKER_CONFIG": config_dir}


def docker(env: dict, socket_path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKER, *args], env={**env, "DOCKER_HOST": f"unix://{socket_path}"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_docker_info_prints_the_daemon(engine, serve_app, short_tmp, docker_env):
    app = create_app(engine, version=TEST_VERSION, status=lambda: dict(FACTS))
    served = serve_app(app).start_unix(f"{short_tmp}/info.sock")
    result = docker(docker_env, served.socket_path, "info")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"Server Version: {TEST_VERSION}" in out and "Storage Driver: dnsd" in out
    assert "Network: bridge host null" in out and "Operating System:" in out
    assert f"Docker Root Dir: {engine.config.state_dir}" in out
    info = ApiClient(socket_path=served.socket_path).request("GET", "/info")
    assert info["Dnsd"]["Pid"] == 4242 and info["Dnsd"]["Networks"] == 1  # the bridge
    assert info["Containers"] == 0 and len(info["ID"]) == 48


def test_docker_endpoints_we_do_not_serve_answer_501(served, docker_env):
    result = docker(docker_env, served.socket_path, "ps")
    assert result.returncode != 0
    assert "dnsd serves Docker's network API only: /containers is not supported" in result.stderr
    result = docker(docker_env, served.socket_path, "image", "ls")
    assert "/images is not supported" in result.stderr
    client = ApiClient(socket_path=served.socket_path)
    with pytest.raises(ApiError) as caught:
        client.request("GET", "/v1.41/volumes")
    assert caught.value.status == 501
    with pytest.raises(ApiError) as caught:
        client.request("GET", "/nonsense")
    assert caught.value.status == 404 and caught.value.message == "page not found"


def test_metrics_on_the_api_and_the_access_log(engine, serve_app, caplog):
    api_stats = ApiStats()
    registry = build_registry(Sources(book=StatsBook(), api=api_stats, version="t"))
    app = create_app(engine, version="t", metrics_registry=registry, api_stats=api_stats)
    served = serve_app(app).start_tcp()
    with caplog.at_level(logging.DEBUG, logger="dnsd.api"):
        assert requests.get(f"{served.base_url}/v1.41/networks", timeout=10).status_code == 200
        assert requests.get(f"{served.base_url}/nope", timeout=10).status_code == 404
        resp = requests.get(f"{served.base_url}/metrics", timeout=10)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/plain")
    assert 'dnsd_api_requests_total{method="GET",route="/networks",status="200"} 1.0' in resp.text
    assert 'dnsd_api_requests_total{method="GET",route="unmatched",status="404"} 1.0' in resp.text
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "dnsd.api"]
    assert any(level == logging.INFO and m.startswith("GET /v1.41/networks 200 ")
               and m.endswith("ms") for level, m in records), records  # fmt: skip
    assert any(level == logging.DEBUG and m.startswith("GET /metrics 200") for level, m in records)


def test_metrics_answer_404_when_counting_is_off(served_tcp):
    resp = requests.get(f"{served_tcp.base_url}/metrics", timeout=10)
    assert resp.status_code == 404 and "--no-metrics" in resp.json()["message"]


def test_request_bodies_are_never_logged(served_tcp, caplog):
    with caplog.at_level(logging.DEBUG, logger="dnsd.api"):
        requests.post(
            f"{served_tcp.base_url}/networks/create",
            json={"Name": "secretnet", "Labels": {"token": "hunter2"}},
            timeout=10,
        )
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "POST /networks/create 201" in text and "hunter2" not in text


@pytest.mark.parametrize("abstract", [False, True])
def test_sd_notify_sends_one_datagram(tmp_path, abstract):
    name = f"dnsd-test-{os.getpid()}-{abstract}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name if abstract else str(tmp_path / "notify"))
        address = "@" + name if abstract else str(tmp_path / "notify")
        assert notify("READY=1\nSTATUS=ok", {"NOTIFY_SOCKET": address})
        assert sock.recv(100) == b"READY=1\nSTATUS=ok"
    assert not notify("READY=1", {})
    assert not notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")})


def test_state_dir_lock_names_the_holder_and_is_released(tmp_path):
    first = StateDirLock(str(tmp_path / "state"))
    first.acquire()
    second = StateDirLock(str(tmp_path / "state"))
    with pytest.raises(StateDirBusy, match=rf"another dnsd \(pid {os.getpid()}\) uses "):
        second.acquire()
    first.release()
    second.acquire()  # free again
    second.release()
