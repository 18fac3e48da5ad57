"""Fixtures of the API tests (the engine and the app in-process come from tests/unit/conftest.py):
the app served on a unix socket or loopback TCP from a background thread (for the
docker CLI, the docker SDK and `dnsd` itself, which all block)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from aiohttp import web

from dnsd.api import create_app, start_tcp, start_unix
from netcore.engine import Engine
from tests.support.engine import TEST_VERSION

T = TypeVar("T")


class ServedApp:
    """The app on its own event loop in a thread, so blocking clients can call it."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.socket_path = ""
        self.port = 0

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start_unix(self, path: str) -> ServedApp:
        self._thread.start()
        self._runner = self._run(start_unix(self.app, path))
        self.socket_path = path
        return self

    def start_tcp(self) -> ServedApp:
        self._thread.start()
        self._runner = self._run(start_tcp(self.app, "127.0.0.1", 0))
        self.port = self._runner.addresses[0][1]
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if not self._thread.is_alive():
            self.loop.close()
            return
        try:
            if self._runner is not None:
                self._run(self._runner.cleanup())
            self._run(self.loop.shutdown_default_executor())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


@pytest.fixture
def short_tmp() -> Iterator[str]:
    """A short directory: unix socket paths must fit in 108 bytes."""
    path = tempfile.mkdtemp(prefix="dnsd-api-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def served(engine: Engine, short_tmp: str) -> Iterator[ServedApp]:
    """The app on a unix socket in a temporary directory."""
    server = ServedApp(create_app(engine, version=TEST_VERSION))
    try:
        yield server.start_unix(f"{short_tmp}/dnsd.sock")
    finally:
        server.stop()


@pytest.fixture
def served_tcp(engine: Engine) -> Iterator[ServedApp]:
    """The app on 127.0.0.1 (a free port)."""
    server = ServedApp(create_app(engine, version=TEST_VERSION))
    try:
        yield server.start_tcp()
    finally:
        server.stop()


@pytest.fixture
def serve_app() -> Iterator[Callable[[web.Application], ServedApp]]:
    """Make more served apps (e.g. one with a token); all are stopped at teardown."""
    started: list[ServedApp] = []

    def make(app: web.Application) -> ServedApp:
        server = ServedApp(app)
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()
