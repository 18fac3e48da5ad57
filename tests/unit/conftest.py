"""Fixtures shared by the unit tests: an engine on the fake kernel, and the API app in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from dnsd.api import create_app
from dnsd.forward import Forwarder
from netcore.engine import Engine
from netcore.kernel.fake import FakeKernel
from netcore.store.memory import MemoryStore
from tests.support.engine import TEST_VERSION, started_engine


@pytest.fixture
def kernel() -> FakeKernel:
    return FakeKernel()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def engine(store: MemoryStore, kernel: FakeKernel, tmp_path: Path) -> Engine:
    """Started, so the default `bridge` network exists, as in the daemon."""
    return started_engine(store, kernel, tmp_path)


@pytest_asyncio.fixture
async def api(engine: Engine) -> AsyncIterator[TestClient]:
    """The app in-process behind aiohttp's test client (loopback TCP)."""
    client = TestClient(TestServer(create_app(engine, version=TEST_VERSION)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture(autouse=True)
def _close_forwarders(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every Forwarder a test makes keeps its upstream sockets open for reuse: close them."""
    made: list[Forwarder] = []
    original = Forwarder.__init__

    def init(self: Forwarder, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(self)

    monkeypatch.setattr(Forwarder, "__init__", init)
    yield
    for forwarder in made:
        forwarder.close()
