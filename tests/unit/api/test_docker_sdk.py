"""The `docker` Python SDK's `client.networks` API, unchanged, against dnsd on a unix socket."""

from __future__ import annotations

from typing import Any

import pytest

from dnsd.cli.api_client import ApiClient
from netcore.engine import Engine
from tests.support.requires import require_module

docker = require_module("docker", "pip install docker")


@pytest.fixture
def client(served: Any):
    sdk = docker.DockerClient(base_url=f"unix://{served.socket_path}", timeout=30)
    try:
        yield sdk
    finally:
        sdk.close()


def test_the_sdk_negotiates_our_api_version(client):
    assert client.api.api_version == "1.41"
    assert client.version()["ApiVersion"] == "1.41"
    assert client.ping() is True


def test_create_get_list_remove(client, engine: Engine):
    ipam = docker.types.IPAMConfig(
        pool_configs=[
            docker.types.IPAMPool(subnet="10.95.0.0/24", gateway="10.95.0.1",
                                  iprange="10.95.0.64/26")
        ]
    )  # fmt: skip
    network = client.networks.create(
        "sdknet",
        driver="bridge",
        ipam=ipam,
        internal=True,
        labels={"made-by": "sdk"},
        options={"com.docker.network.bridge.enable_icc": "false"},
    )
    stored = engine.registry.networks[network.id]
    assert stored.name == "sdknet" and stored.internal and not stored.icc
    assert str(stored.ipv4.ip_range) == "10.95.0.64/26"

    got = client.networks.get("sdknet")
    assert got.id == network.id and got.name == "sdknet"
    assert got.attrs["IPAM"]["Config"][0]["Subnet"] == "10.95.0.0/24"
    assert got.attrs["Labels"] == {"made-by": "sdk"}
    assert client.networks.get(network.id[:10]).id == network.id

    assert sorted(n.name for n in client.networks.list()) == ["bridge", "host", "none", "sdknet"]
    assert [n.name for n in client.networks.list(names=["sdknet"])] == ["sdknet"]
    assert [n.id for n in client.networks.list(ids=[network.id])] == [network.id]
    assert [n.name for n in client.networks.list(filters={"label": "made-by=sdk"})] == ["sdknet"]
    builtin = client.networks.list(filters={"type": "builtin"}, greedy=True)
    assert sorted(n.name for n in builtin) == ["bridge", "host", "none"]

    network.remove()
    assert network.id not in engine.registry.networks
    with pytest.raises(docker.errors.NotFound):
        client.networks.get("sdknet")


def test_errors_are_typed_like_dockers(client):
    client.networks.create("dup", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.96.0.0/24")]))  # fmt: skip
    with pytest.raises(docker.errors.APIError) as conflict:
        client.networks.create("dup")
    assert conflict.value.status_code == 409
    assert "already exists" in conflict.value.explanation
    with pytest.raises(docker.errors.APIError) as bad:
        client.networks.create("bad/name")
    assert bad.value.status_code == 400 and "Name" in bad.value.explanation
    with pytest.raises(docker.errors.APIError) as forbidden:
        client.networks.get("none").remove()
    assert forbidden.value.status_code == 403


def test_connect_disconnect(client, served, engine: Engine):
    network = client.networks.create("linked", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.97.0.0/24")]))  # fmt: skip
    sandbox_id = ApiClient(socket_path=served.socket_path).create_sandbox("peer")
    network.connect("peer", aliases=["peer-alias"], ipv4_address="10.97.0.77")
    (endpoint,) = engine.registry.endpoints_of(sandbox_id)
    assert str(endpoint.ipv4) == "10.97.0.77" and endpoint.aliases == ("peer-alias",)
    network.reload()
    assert network.attrs["Containers"][sandbox_id]["IPv4Address"] == "10.97.0.77/24"
    with pytest.raises(docker.errors.APIError) as taken:
        ApiClient(socket_path=served.socket_path).create_sandbox("other")
        network.connect("other", ipv4_address="10.97.0.77")
    assert taken.value.status_code == 409
    network.disconnect("peer", force=True)
    assert not engine.registry.endpoints_of(sandbox_id)
    with pytest.raises(docker.errors.NotFound):
        network.disconnect("peer")


def test_prune(client, served, engine: Engine):
    client.networks.create("idle")
    client.networks.create("idle-kept", labels={"keep": "1"})
    used = client.networks.create("used")
    ApiClient(socket_path=served.socket_path).create_sandbox("user", network=used.id)
    assert client.networks.prune(filters={"label!": "keep"}) == {"NetworksDeleted": ["idle"]}
    assert client.networks.prune() == {"NetworksDeleted": ["idle-kept"]}
    assert sorted(n.name for n in engine.registry.networks.values()) == ["bridge", "used"]
