"""`GET /metrics`: the text exposition of a registry, on the API or a listener of its own.

The listener of its own (`--metrics-listen HOST:PORT`) serves nothing else and needs no token:
scrapers rarely carry one, and it cannot change anything.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

METRICS_KEY = web.AppKey("metrics", CollectorRegistry)


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus' text format (404 when the daemon counts nothing)."""
    registry = request.app.get(METRICS_KEY)
    if registry is None:
        return web.json_response(
            {"message": "metrics are off: the daemon runs with --no-metrics"}, status=404
        )
    response = web.Response(body=generate_latest(registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def metrics_app(registry: CollectorRegistry) -> web.Application:
    """An application that serves only `/metrics` (and `/` pointing at it)."""
    app = web.Application()
    app[METRICS_KEY] = registry

    async def index(request: web.Request) -> web.Response:
        return web.Response(
            text='dnsd: metrics at <a href="/metrics">/metrics</a>\n', content_type="text/html"
        )

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", index)
    return app
