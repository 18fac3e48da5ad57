"""The registry API application: Docker's network endpoints, our sandboxes, and the OpenAPI file.

Every route is served both bare (`/networks`) and under any `/v1.NN/` prefix, because Docker
clients always send one.
"""

from __future__ import annotations

import os
import socket
import stat

from aiohttp import web
from prometheus_client import CollectorRegistry

from netcore.engine import Engine
from netcore.errors import Conflict

from ..metrics.counters import ApiStats
from ..metrics.exposition import METRICS_KEY, metrics
from . import handlers_networks as networks
from . import handlers_records as records
from . import handlers_sandboxes as sandboxes
from .access import access_middleware
from .info import STATUS_KEY, StatusSource, info_shape
from .middleware import Handler, auth_middleware, error_middleware, reply, version_middleware
from .openapi import build_document
from .shapes import API_VERSION, MIN_API_VERSION, version_shape

VERSION_PREFIX = r"/{version:v[0-9]{1,3}\.[0-9]{1,3}}"
DAEMON_VERSION_KEY = web.AppKey("daemon_version", str)

# (method, path, handler): the one list both the router and the OpenAPI check read.
ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("POST", "/networks/create", networks.create_network),
    ("POST", "/networks/prune", networks.prune),
    ("GET", "/networks", networks.list_networks),
    ("GET", "/networks/{ref}", networks.inspect_network),
    ("DELETE", "/networks/{ref}", networks.remove_network),
    ("POST", "/networks/{ref}/connect", networks.connect),
    ("POST", "/networks/{ref}/disconnect", networks.disconnect),
    ("POST", "/networks/{ref}/records", records.add_record),
    ("GET", "/networks/{ref}/records", records.list_records),
    ("DELETE", "/networks/{ref}/records/{name}/{type}", records.remove_record),
    ("POST", "/sandboxes", sandboxes.create_sandbox),
    ("GET", "/sandboxes", sandboxes.list_sandboxes),
    ("GET", "/sandboxes/{ref}", sandboxes.inspect_sandbox),
    ("DELETE", "/sandboxes/{ref}", sandboxes.remove_sandbox),
)


async def ping(request: web.Request) -> web.Response:
    """GET|HEAD /_ping: `OK`; the API-Version header lets clients negotiate."""
    return web.Response(
        text="" if request.method == "HEAD" else "OK",
        headers={"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"},
    )


async def version(request: web.Request) -> web.Response:
    """GET /version: Docker's shape."""
    return reply(version_shape(request.app[DAEMON_VERSION_KEY]))


async def info(request: web.Request) -> web.Response:
    """GET /info: Docker's shape, dnsd's own facts under `Dnsd`."""
    source = request.app.get(STATUS_KEY)
    facts = source() if source is not None else {}
    engine = networks.engine_of(request)
    return reply(info_shape(engine, request.app[DAEMON_VERSION_KEY], facts))


async def openapi(request: web.Request) -> web.Response:
    """GET /openapi.json: the document of this API."""
    return reply(build_document(request.app[DAEMON_VERSION_KEY]))


async def _docker_headers(request: web.Request, response: web.StreamResponse) -> None:
    # Docker sets these on every answer; the CLI reads API-Version and OSType from /_ping.
    response.headers["API-Version"] = API_VERSION
    response.headers["OSType"] = "linux"
    response.headers["Docker-Experimental"] = "false"
    response.headers["Server"] = f"dnsd/{request.app[DAEMON_VERSION_KEY]} (linux)"


def all_routes() -> list[tuple[str, str, Handler]]:
    """Every (method, path, handler) the app serves, before the version prefix."""
    return [
        ("GET", "/_ping", ping),
        ("HEAD", "/_ping", ping),
        ("GET", "/version", version),
        ("GET", "/info", info),
        ("GET", "/metrics", metrics),
        ("GET", "/openapi.json", openapi),
        *ROUTES,
    ]


def create_app(
    engine: Engine,
    *,
    token: str | None = None,
    version: str,
    status: StatusSource | None = None,
    metrics_registry: CollectorRegistry | None = None,
    api_stats: ApiStats | None = None,
) -> web.Application:
    """The aiohttp application over `engine`; with `token`, every request needs it.

    `status` adds the running daemon's facts to `/info`, `metrics_registry` is what `/metrics`
    exposes (503 without), `api_stats` counts requests by route and status."""
    middlewares = [access_middleware(api_stats), error_middleware]
    if token is not None:
        if not token:
            raise ValueError("an API token must not be empty")
        middlewares.append(auth_middleware(token))
    middlewares.append(version_middleware(MIN_API_VERSION))
    app = web.Application(middlewares=middlewares)
    app[networks.ENGINE_KEY] = engine
    app[DAEMON_VERSION_KEY] = version
    if status is not None:
        app[STATUS_KEY] = status
    if metrics_registry is not None:
        app[METRICS_KEY] = metrics_registry
    for method, path, handler in all_routes():
        for prefix in ("", VERSION_PREFIX):
            app.router.add_route(method, prefix + path, handler)
    app.on_response_prepare.append(_docker_headers)
    return app


# --- serving (used by the daemon and the tests) ---


def claim_socket_path(path: str) -> None:
    """Remove a stale socket left by a crash; refuse to steal a live one."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise Conflict(f"{path} exists and is not a socket: remove it or choose another path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody answers: a leftover of a daemon that died
        return
    finally:
        probe.close()
    raise Conflict(f"another daemon is listening on {path}: stop it first")


async def start_unix(app: web.Application, path: str, *, mode: int = 0o660) -> web.AppRunner:
    """Serve `app` on a unix socket (parent directory created, socket chmod `mode`)."""
    # A new parent directory is not world-readable; the socket's own mode is the gate.
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o750, exist_ok=True)
    claim_socket_path(path)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.UnixSite(runner, path).start()
        os.chmod(path, mode)
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def start_tcp(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve `app` on TCP (the caller made sure a token is set)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
