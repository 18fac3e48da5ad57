"""Healthcheck on `POST /sandboxes` and `POST /sandboxes/{ref}/update`: validation (400 naming
the field), persistence with the sandbox (old rows load), and its shape in `GET`."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dnsd.api import create_app
from dnsd.health.state import Health, Result
from netcore.engine import Engine
from netcore.model import sandbox_from_dict, to_dict
from netcore.registry import Registry
from netcore.store.memory import MemoryStore
from tests.support.engine import TEST_VERSION

from .responses import error_message, json_body

pytestmark = pytest.mark.asyncio
MS = 1_000_000
CHECK = {"Test": ["HTTP", "8080", "/health"], "Interval": 500 * MS, "Retries": 2}


@pytest.mark.parametrize(
    ("check", "field"),
    [
        ({"Test": ["PING", "x"]}, "Healthcheck.Test"),
        ({"Test": ["TCP"]}, "Healthcheck.Test"),
        ({"Test": ["TCP", "99999"]}, "Healthcheck.Test"),
        ({"Test": ["HTTP", "80", "health"]}, "Healthcheck.Test"),
        ({"Test": ["CMD"]}, "Healthcheck.Test"),
        ({"Test": ["CMD-SHELL", "x" * 5000]}, "Healthcheck.Test"),
        ({"Test": "CMD true"}, "Healthcheck.Test"),
        ({"Test": ["TCP", "80"], "Interval": -1}, "Healthcheck.Interval"),
        ({"Test": ["TCP", "80"], "Interval": 50 * MS}, "Healthcheck.Interval"),
        ({"Test": ["TCP", "80"], "Interval": "1s"}, "Healthcheck.Interval"),
        ({"Test": ["TCP", "80"], "Timeout": -5}, "Healthcheck.Timeout"),
        ({"Test": ["TCP", "80"], "StartPeriod": -1}, "Healthcheck.StartPeriod"),
        ({"Test": ["TCP", "80"], "Retries": -1}, "Healthcheck.Retries"),
        ({"Test": ["CMD", "true"], "User": "a b"}, "Healthcheck.User"),
        ("TCP 80", "Healthcheck"),
    ],
)
async def test_a_malformed_healthcheck_is_a_400_naming_the_field(api, check, field):
    resp = await api.post("/sandboxes", json={"Name": "bad", "Healthcheck": check})
    message = await error_message(resp, 400)
    assert message.startswith(f"{field}:"), message
    await api.post("/sandboxes", json={"Name": "ok"})
    resp = await api.post("/sandboxes/ok/update", json={"Healthcheck": check})
    assert (await error_message(resp, 400)).startswith(f"{field}:")


async def test_create_update_and_inspect(api, engine: Engine):
    resp = await api.post("/v1.41/sandboxes", json={"Name": "web", "Healthcheck": CHECK})
    sandbox_id = (await json_body(resp, 201))["Id"]
    body = await json_body(await api.get("/sandboxes/web"), 200)
    assert body["Healthcheck"] == {**CHECK, "Timeout": 0, "StartPeriod": 0}
    assert body["State"] == {"Health": None}  # no monitor in this app
    check = engine.registry.sandboxes[sandbox_id].healthcheck
    assert check is not None and check.interval_s == 0.5 and check.timeout_s == 30

    tcp = {"Test": ["TCP", "5432"], "User": "daemon"}
    resp = await api.post("/sandboxes/web/update", json={"Healthcheck": tcp})
    assert (await json_body(resp, 200)) == {"Warnings": []}
    body = await json_body(await api.get("/sandboxes/web"), 200)
    assert (
        body["Healthcheck"]["Test"] == ["TCP", "5432"] and body["Healthcheck"]["User"] == "daemon"
    )

    await json_body(await api.post("/sandboxes/web/update", json={"Healthcheck": None}), 200)
    assert engine.registry.sandboxes[sandbox_id].healthcheck is None
    resp = await api.post("/sandboxes/nosuch/update", json={"Healthcheck": CHECK})
    assert resp.status == 404


async def test_the_check_survives_a_restart_and_old_rows_load(store: MemoryStore, api, engine):
    await json_body(await api.post("/sandboxes", json={"Name": "db", "Healthcheck": CHECK}), 201)
    reloaded = Registry(store)
    (db,) = [s for s in reloaded.sandboxes.values() if s.name == "db"]
    assert db.healthcheck == engine.registry.find_sandbox("db").healthcheck
    old_row = to_dict(db)
    del old_row["healthcheck"]  # a row written before health checks existed
    assert sandbox_from_dict(old_row).healthcheck is None


class _Health:
    def health(self, sandbox_id: str) -> Health | None:
        return Health("unhealthy", 3, (Result(1700000000.25, 1700000000.5, 1, "refused"),))


async def test_state_health_in_docker_shape(engine: Engine):
    app = create_app(engine, version=TEST_VERSION, health=_Health())
    async with TestClient(TestServer(app)) as client:
        await _check_state_health(client)


async def _check_state_health(client: Any) -> None:
    await json_body(await client.post("/sandboxes", json={"Name": "w", "Healthcheck": CHECK}), 201)
    body = await json_body(await client.get("/sandboxes/w"), 200)
    assert body["State"]["Health"] == {
        "Status": "unhealthy",
        "FailingStreak": 3,
        "Log": [
            {
                "Start": "2023-11-14T22:13:20.250000000Z",
                "End": "2023-11-14T22:13:20.500000000Z",
                "ExitCode": 1,
                "Output": "refused",
            }
        ],
    }
    (listed,) = [
        s for s in await json_body(await client.get("/sandboxes"), 200) if s["Name"] == "w"
    ]
    assert listed["State"]["Health"]["Status"] == "unhealthy"
