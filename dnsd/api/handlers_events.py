"""`GET /events`: Docker's event stream, newline-delimited JSON, so `docker events` works.

`since` replays from the bus's ring, `until` ends the stream (at once when it is past),
`filters` selects (type, event, network, container). A watcher too slow to keep up is cut off
with a last line `{"error": ...}` instead of holding the daemon back.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from ..events.bus import EventBus
from ..events.messages import Event
from ..events.select import FILTERS, matches, now_ns, parse_timestamp
from .bodies import query_filters

EVENTS_KEY = web.AppKey("events", EventBus)
STOPPING_KEY = web.AppKey("events_stopping", list)  # non-empty once the app shuts down
TICK_S = 1.0  # how often an idle stream checks that its client and the app are still there
DROPPED = "events dropped: this watcher did not keep up; reconnect with since= to catch up"


def _line(event: Event) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


async def on_shutdown(app: web.Application) -> None:
    """End the streams, which would otherwise keep the server's shutdown waiting."""
    app[STOPPING_KEY].append(True)


async def stream_events(request: web.Request) -> web.StreamResponse:
    """GET /events[?since=T][&until=T][&filters={...}]."""
    since = parse_timestamp(request.query.get("since"), "since")
    until = parse_timestamp(request.query.get("until"), "until")
    filters = query_filters(request, FILTERS)
    bus = request.app[EVENTS_KEY]
    watcher = bus.watch(since)
    try:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for event in watcher.replay:
            if until is not None and event["timeNano"] > until:
                return response
            if matches(event, filters):
                await response.write(_line(event))
        while until is None or now_ns() < until:
            if watcher.dropped and watcher.queue.empty():
                await response.write(_line({"error": DROPPED, "message": DROPPED}))
                break
            wait = TICK_S if until is None else min(TICK_S, (until - now_ns()) / 1e9)
            try:
                event = await asyncio.wait_for(watcher.queue.get(), max(wait, 0))
            except TimeoutError:
                transport = request.transport
                if request.app[STOPPING_KEY] or transport is None or transport.is_closing():
                    break  # the client left (aiohttp does not cancel us), or we stop
                continue
            if until is not None and event["timeNano"] > until:
                break
            if matches(event, filters):
                await response.write(_line(event))
        return response
    finally:
        bus.unwatch(watcher)
