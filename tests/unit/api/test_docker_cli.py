"""The real `docker` CLI (client only, no Docker engine) manages networks on dnsd.

The app runs on the fake kernel behind a unix socket in a temporary directory; the CLI reaches
it through DOCKER_HOST, with its configuration in a temporary DOCKER_CONFIG.
"""

from __future__ import annotations

import json
import os
import subprocess
from subprocess import CompletedProcess
from typing import Any

import pytest

from dnsd.cli.api_client import ApiClient
from netcore.engine import Engine
from tests.support.requires import require_binary

DOCKER = require_binary(
    "docker", "apt-get install docker.io", also=("/usr/bin/docker", "/usr/local/bin/docker")
)


@pytest.fixture
def docker(served: Any, short_tmp: str):
    config_dir = os.path.join(short_tmp, "docker-config")
    os.makedirs(config_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env |= {"DOCKER_HOST": f"unix://{served.socket_path}", "DOCKER_CONFIG": config_dir}

    def run(*args: str, check: bool = True) -> CompletedProcess[str]:
        result = subprocess.run(
            [DOCKER, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    return run


def _names(out: str) -> list[str]:
    return sorted(out.split())


def test_ls_shows_the_predefined_networks(docker):
    out = docker("network", "ls").stdout.splitlines()
    assert out[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    rows = sorted(line.split()[1:] for line in out[1:])
    assert rows == [["bridge", "bridge", "local"], ["host", "host", "local"],
                    ["none", "null", "local"]]  # fmt: skip


def test_version_negotiates_down_to_our_api(docker):
    out = docker("version", "--format", "{{.Server.APIVersion}} {{.Client.APIVersion}}").stdout
    assert out.split() == ["1.41", "1.41"]


def test_create_inspect_ls_rm(docker, engine: Engine):
    net_id = docker(
        "network", "create", "--subnet", "10.90.0.0/24", "--gateway", "10.90.0.1",
        "--ip-range", "10.90.0.128/25", "--internal", "--opt",
        "com.docker.network.bridge.name=brdocker", "--label", "owner=tests", "dockernet",
    ).stdout.strip()  # fmt: skip
    network = engine.registry.networks[net_id]
    assert network.name == "dockernet" and network.bridge == "brdocker" and network.internal
    assert str(network.ipv4.ip_range) == "10.90.0.128/25"
    assert dict(network.labels) == {"owner": "tests"}

    (inspected,) = json.loads(docker("network", "inspect", "dockernet").stdout)
    assert inspected["Id"] == net_id and inspected["Internal"] is True
    assert inspected["IPAM"]["Config"] == [
        {"Subnet": "10.90.0.0/24", "Gateway": "10.90.0.1", "IPRange": "10.90.0.128/25"}
    ]
    subnet = docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", net_id[:8])
    assert subnet.stdout.strip() == "10.90.0.0/24"

    assert _names(docker("network", "ls", "-f", "name=docker", "--format", "{{.Name}}").stdout) == [
        "dockernet"
    ]
    assert docker("network", "ls", "-q", "-f", "label=owner=tests").stdout.split() == [net_id[:12]]
    custom = docker("network", "ls", "--filter", "type=custom", "--format", "{{.Name}}").stdout
    assert _names(custom) == ["dockernet"]
    null = docker("network", "ls", "--filter", "driver=null", "--format", "{{.Name}}").stdout
    assert _names(null) == ["none"]
    no_trunc = docker("network", "ls", "--no-trunc", "-q", "-f", f"id={net_id[:6]}").stdout
    assert no_trunc.split() == [net_id]

    assert docker("network", "rm", "dockernet").stdout.split() == ["dockernet"]
    assert net_id not in engine.registry.networks


def test_create_refusals_carry_the_daemons_message(docker):
    docker("network", "create", "--subnet", "10.91.0.0/16", "one")
    dup = docker("network", "create", "one", check=False)
    assert dup.returncode != 0 and "network with name one already exists" in dup.stderr
    overlap = docker("network", "create", "--subnet", "10.91.8.0/24", "two", check=False)
    assert overlap.returncode != 0 and "overlaps" in overlap.stderr
    bad = docker("network", "create", "bad;name", check=False)
    assert bad.returncode != 0 and "invalid name" in bad.stderr
    assert '{"message"' not in bad.stderr  # parsed, not dumped raw


def test_connect_disconnect(docker, served, engine: Engine):
    docker("network", "create", "--subnet", "10.92.0.0/24", "appnet")
    client = ApiClient(socket_path=served.socket_path)
    sandbox_id = client.create_sandbox("worker")
    docker("network", "connect", "--alias", "api", "--alias", "backend", "--ip", "10.92.0.42",
           "appnet", "worker")  # fmt: skip
    (endpoint,) = engine.registry.endpoints_of(sandbox_id)
    assert str(endpoint.ipv4) == "10.92.0.42" and endpoint.aliases == ("api", "backend")
    (inspected,) = json.loads(docker("network", "inspect", "appnet").stdout)
    assert inspected["Containers"][sandbox_id]["Name"] == "worker"
    assert inspected["Containers"][sandbox_id]["IPv4Address"] == "10.92.0.42/24"
    assert client.sandbox("worker")["Networks"]["appnet"]["IPAddress"] == "10.92.0.42"

    again = docker("network", "connect", "appnet", "worker", check=False)
    assert again.returncode != 0 and "already connected" in again.stderr
    busy = docker("network", "rm", "appnet", check=False)
    assert busy.returncode != 0 and "active endpoints" in busy.stderr
    nobody = docker("network", "connect", "appnet", "nobody", check=False)
    assert nobody.returncode != 0 and "nobody" in nobody.stderr

    docker("network", "disconnect", "appnet", "worker")
    assert not engine.registry.endpoints_of(sandbox_id)
    docker("network", "connect", "appnet", sandbox_id[:12])  # by id prefix too
    docker("network", "disconnect", "--force", "appnet", sandbox_id)
    assert not engine.registry.endpoints


def test_predefined_and_unknown_networks(docker):
    host = docker("network", "rm", "host", check=False)
    assert host.returncode != 0
    assert "host is a pre-defined network and cannot be removed" in host.stderr
    missing = docker("network", "inspect", "nosuchnet", check=False)
    assert missing.returncode != 0 and "nosuchnet" in missing.stderr
    gone = docker("network", "rm", "nosuchnet", check=False)
    # docker >= 23 prints the daemon's message; Debian's 20.10 CLI says "No such network: NAME"
    assert gone.returncode != 0
    assert (
        "network nosuchnet not found" in gone.stderr or "No such network: nosuchnet" in gone.stderr
    )


def test_prune(docker, served, engine: Engine):
    docker("network", "create", "spare1")
    docker("network", "create", "--label", "keep=yes", "spare2")
    docker("network", "create", "kept")
    ApiClient(socket_path=served.socket_path).create_sandbox("holder", network="kept")
    out = docker("network", "prune", "-f", "--filter", "label!=keep=yes").stdout
    assert out.split() == ["Deleted", "Networks:", "spare1"]
    out = docker("network", "prune", "--force").stdout
    assert out.split() == ["Deleted", "Networks:", "spare2"]
    assert sorted(n.name for n in engine.registry.networks.values()) == ["bridge", "kept"]
