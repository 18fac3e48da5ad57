"""Typed intents: one type per kind, stored in the format dnsd has always written."""

from __future__ import annotations

import ipaddress

import pytest

from netcore.intents import (
    Connect,
    CreateNetwork,
    CreateSandbox,
    Disconnect,
    RemoveNetwork,
    RemoveSandbox,
    UnknownIntent,
    decode,
    encode,
    record,
)
from netcore.model import endpoint_from_dict
from netcore.registry import Registry
from netcore.store.base import Put
from netcore.store.sqlite import SQLiteStore

# Subjects exactly as the engine before typed intents stored them (`to_dict` of the object).
NETWORK = {
    "id": "a" * 64,
    "name": "netA",
    "bridge": "br-aaaaaaaaaaaa",
    "ipv4": {"subnet": "10.1.0.0/24", "gateway": "10.1.0.1", "ip_range": None},
    "ipv6": None,
    "internal": False,
    "icc": True,
    "masquerade": True,
    "mtu": None,
    "dns_ttl": 0,
    "labels": [],
    "options": [],
    "driver": "bridge",
    "created": "2024-05-01T10:00:00Z",
}
SANDBOX = {
    "id": "b" * 64,
    "name": "web",
    "netns_path": "/run/netns/web",
    "owned": True,
    "hostname": "",
    "mode": "bridge",
    "joined_to": None,
    "dns": [],
    "dns_search": None,
    "dns_options": None,
    "extra_hosts": [],
    "ports": [{"container_port": 80, "host_port": 8080, "proto": "tcp", "host_ip": None}],
    "resolv_conf_path": "/etc/netns/web/resolv.conf",
    "hosts_path": "/etc/netns/web/hosts",
    "created": "2024-05-01T10:00:01Z",
}
ENDPOINT = {
    "id": "c" * 64,
    "network_id": "a" * 64,
    "sandbox_id": "b" * 64,
    "ifname": "eth0",
    "host_ifname": "vethccccccccccc",
    "mac": "02:42:0a:01:00:07",
    "ipv4": "10.1.0.7",
    "ipv6": None,
    "aliases": ["web"],
    "is_gateway": True,
}
OLD_ROWS = [
    ({"op": "create_network", "network": NETWORK}, CreateNetwork, "network"),
    ({"op": "remove_network", "network": NETWORK}, RemoveNetwork, "network"),
    ({"op": "create_sandbox", "sandbox": SANDBOX}, CreateSandbox, "sandbox"),
    ({"op": "remove_sandbox", "sandbox": SANDBOX}, RemoveSandbox, "sandbox"),
    ({"op": "connect", "endpoint": ENDPOINT}, Connect, "endpoint"),
    ({"op": "disconnect", "endpoint": ENDPOINT}, Disconnect, "endpoint"),
]


@pytest.mark.parametrize(("row", "kind", "field"), OLD_ROWS)
def test_an_old_row_decodes_to_its_type_and_encodes_back_unchanged(row, kind, field):
    intent = decode(row)
    assert type(intent) is kind
    subject = getattr(intent, field)
    assert subject.id == row[field]["id"]
    assert encode(intent) == row  # a downgraded daemon reads what this one writes


def test_decoded_subjects_are_typed():
    assert decode(OLD_ROWS[0][0]).network.ipv4.gateway == ipaddress.ip_address("10.1.0.1")
    assert decode(OLD_ROWS[2][0]).sandbox.ports[0].host_port == 8080
    assert decode(OLD_ROWS[4][0]).endpoint.ipv4 == ipaddress.ip_address("10.1.0.7")


def test_an_unknown_kind_is_kept_as_stored():
    row = {"op": "resize_network", "network": NETWORK, "size": 3}
    intent = decode(row)
    assert intent == UnknownIntent("resize_network", row)
    assert encode(intent) == row
    assert isinstance(decode({"network": NETWORK}), UnknownIntent)  # no kind at all


def test_the_registry_loads_old_rows_as_typed_intents(tmp_path):
    db = str(tmp_path / "state.db")
    old = Registry(SQLiteStore(db))
    old.commit([Put("intent", f"i{n}", row) for n, (row, _, _) in enumerate(OLD_ROWS)])
    old.commit([record("new", Connect(endpoint_from_dict(ENDPOINT)))])
    reloaded = Registry(SQLiteStore(db))
    assert [type(reloaded.intents[f"i{n}"]) for n in range(len(OLD_ROWS))] == [
        kind for _, kind, _ in OLD_ROWS
    ]
    assert reloaded.intents["new"] == reloaded.intents["i4"]
