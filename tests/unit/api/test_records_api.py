"""`/networks/{ref}/records`: add, list, remove, every refusal naming its field, persistence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dnsd.records import RecordRequest, plan_add
from netcore.engine import Engine
from netcore.kernel.fake import FakeKernel
from netcore.model import PortBinding
from netcore.registry import Registry
from netcore.requests import ConnectRequest, NetworkRequest, SandboxRequest
from netcore.store.sqlite import SQLiteStore
from tests.support.engine import started_engine

from .responses import error_message, json_body

pytestmark = pytest.mark.asyncio

URL = "/networks/app/records"


@pytest.fixture
def app_net(engine: Engine) -> str:
    network = engine.create_network(NetworkRequest.build("app", subnet="10.70.0.0/24"))
    web = engine.create_sandbox(SandboxRequest(name="web", ports=(PortBinding(80, 8080),)))
    engine.connect(network.id, web.id, ConnectRequest(aliases=("api",)))
    return network.id


async def _add(api: Any, status: int = 201, **body: Any) -> Any:
    return await json_body(await api.post(URL, json=body), status)


async def test_records_are_added_listed_and_removed(api, app_net):
    added = await _add(api, Name="db", Type="a", Value=" 10.70.0.5 ")
    assert added == {"Name": "db", "Type": "A", "Value": "10.70.0.5", "TTL": None}
    await _add(api, Name="db", Type="A", Value="10.70.0.6", TTL=30)
    await _add(api, Name="www", Type="CNAME", Value="web")
    await _add(api, Name="_pg._tcp.db", Type="SRV", Value="10 5 5432 db.app.")
    await _add(api, Name="db", Type="TXT", Value='"v=1" two')
    listed = await json_body(await api.get("/v1.41" + URL), 200)
    assert [(r["Name"], r["Type"], r["Value"], r["TTL"]) for r in listed] == [
        ("_pg._tcp.db", "SRV", "10 5 5432 db.app.", None),
        ("db", "A", "10.70.0.5", None),
        ("db", "A", "10.70.0.6", 30),
        ("db", "TXT", '"v=1" "two"', None),
        ("www", "CNAME", "web.", None),
    ]
    # One value of an RRset, then the rest of it.
    resp = await api.delete(URL + "/db/A", params={"value": "10.70.0.6"})
    assert resp.status == 204
    assert [r["Value"] for r in await json_body(await api.get(URL), 200) if r["Type"] == "A"] == [
        "10.70.0.5"
    ]
    assert (await api.delete(URL + "/DB./a")).status == 204
    await error_message(await api.delete(URL + "/db/A"), 404, "no A record db on network app")
    await error_message(await api.delete(URL + "/db/TXT", params={"value": '"v=2"'}), 404, '"v=2"')
    await error_message(await api.delete(URL + "/db/MX"), 400, "type", "MX")


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"Name": "web", "Type": "A", "Value": "10.70.0.9"}, "Name", "sandbox web"),
        ({"Name": "api.app", "Type": "AAAA", "Value": "fd00::9"}, "Name", "sandbox web"),
        ({"Name": "web", "Type": "CNAME", "Value": "x.example."}, "Name", "sandbox web"),
        ({"Name": "_80._tcp.web", "Type": "CNAME", "Value": "x."}, "Name", "sandbox web"),
        ({"Name": "db", "Type": "CNAME", "Value": "x.example."}, "Type", "CNAME stands alone"),
        ({"Name": "db.app", "Type": "TXT", "Value": "x"}, None, None),  # TXT beside A: fine
        ({"Name": "alias", "Type": "A", "Value": "10.70.0.9"}, "Type", "CNAME stands alone"),
        ({"Name": "srv", "Type": "SRV", "Value": "10 5 db.example."}, "Value", "port"),
        ({"Name": "srv", "Type": "SRV", "Value": "10 5 5432"}, "Value", "target missing"),
        ({"Name": "bad..name", "Type": "A", "Value": "10.0.0.1"}, "Name", "invalid DNS name"),
        ({"Name": "a b", "Type": "A", "Value": "10.0.0.1"}, "Name", "invalid DNS name"),
        ({"Name": "x", "Type": "A", "Value": "10.0.0.256"}, "Value", "IPv4"),
        ({"Name": "x", "Type": "AAAA", "Value": "10.0.0.1"}, "Value", "IPv6"),
        ({"Name": "x", "Type": "TXT", "Value": '"open'}, "Value", "not closed"),
        ({"Name": "x", "Type": "MX", "Value": "10 mx."}, "Type", "A, AAAA, CNAME, SRV, TXT"),
        ({"Name": "x", "Type": "A", "Value": "10.0.0.1", "TTL": -1}, "TTL", "out of range"),
        ({"Name": "x", "Type": "A", "Value": "10.0.0.1", "TTL": 2**31}, "TTL", "out of range"),
        ({"Name": "x", "Type": "A", "Value": "10.0.0.1", "TTL": "5"}, "TTL", "whole number"),
        ({"Type": "A", "Value": "10.0.0.1"}, "Name", "non-empty"),
        ({"Name": "x", "Type": "A"}, "Value", "needs a value"),
    ],
)
async def test_bad_records_are_refused_naming_the_field(api, app_net, body, field, fragment):
    await _add(api, Name="db", Type="A", Value="10.70.0.5")
    await _add(api, Name="alias", Type="CNAME", Value="db")
    resp = await api.post(URL, json=body)
    if field is None:
        await json_body(resp, 201)
        return
    message = await error_message(resp, 400, fragment)
    assert message.startswith(f"{field}: "), message


async def test_the_same_record_twice_is_a_conflict(api, app_net):
    await _add(api, Name="db", Type="A", Value="10.70.0.5")
    await error_message(
        await api.post(URL, json={"Name": "DB.app", "Type": "A", "Value": "10.70.0.5"}),
        409,
        "already exists",
    )


async def test_unknown_and_builtin_networks(api, app_net):
    body = {"Name": "db", "Type": "A", "Value": "10.0.0.5"}
    await error_message(await api.post("/networks/nosuch/records", json=body), 404, "nosuch")
    await error_message(await api.get("/networks/host/records"), 400, "no DNS of ours")


async def test_removing_the_network_removes_its_records(api, engine, app_net):
    await _add(api, Name="db", Type="A", Value="10.70.0.5")
    engine.disconnect(app_net, "web")
    engine.remove_network(app_net)
    assert engine.registry.snapshot().records == ()


async def test_records_survive_a_restart_and_old_state_loads(tmp_path: Path):
    path = str(tmp_path / "state.db")
    store = SQLiteStore(path)
    store.commit([])  # a store written before records existed loads with none
    engine = started_engine(store, FakeKernel(), tmp_path)
    assert engine.registry.snapshot().records == ()
    network = engine.create_network(NetworkRequest.build("app", subnet="10.70.0.0/24"))
    req = RecordRequest.build("db", "TXT", '"v=1"', 60)
    engine.commit_planned(lambda registry: plan_add(registry, network, req))
    store.close()
    reloaded = Registry(SQLiteStore(path))
    [record] = reloaded.snapshot().records
    assert (record.network_id, record.name, record.type, record.value, record.ttl) == (
        network.id,
        "db",
        "TXT",
        '"v=1"',
        60,
    )
