"""The API's access log (method, path, status, milliseconds; never a body) and request counts.

The outermost middleware, so it sees the status the client gets after error mapping. Scrapes
and pings, which arrive every few seconds, are logged at debug; everything else at info.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..metrics.counters import ApiStats
from .middleware import Handler

log = logging.getLogger("dnsd.api")

QUIET_PATHS = ("/_ping", "/metrics")
UNMATCHED = "unmatched"  # every unknown path counts under one route label


def route_of(request: web.Request) -> str:
    """The route template without the version prefix (bounded label values)."""
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None or getattr(info, "http_exception", None) is not None:
        return UNMATCHED
    return resource.canonical.removeprefix("/{version}")


def access_middleware(
    stats: ApiStats | None,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            route = route_of(request)
            ms = (time.monotonic() - started) * 1000
            quiet = route in QUIET_PATHS
            log.log(
                logging.DEBUG if quiet else logging.INFO,
                "%s %s %d %.1fms",
                request.method,
                request.path,
                status,
                ms,
            )
            if stats is not None:
                stats.count(route, request.method, status)

    return access
