"""The API's edge: errors to HTTP statuses, bearer-token auth, and the API version prefix.

This module is the only place that turns an error *kind* into an HTTP status, so every handler
just raises the typed errors of `netcore.errors` and the client always gets Docker's error shape,
`{"message": "..."}`.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from netcore.errors import Conflict, ErrorKind, NetcoreError

from .unsupported import unsupported_message

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATUS_BY_KIND = {
    ErrorKind.INVALID_ARGUMENT: 400,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.INTERNAL: 500,
}


class PredefinedNetwork(Conflict):
    """An operation Docker forbids on its pre-defined networks (`host`, `none`, `bridge`).

    Docker answers these with 403 rather than 409; the docker CLI only prints the message.
    """


def status_of(exc: NetcoreError) -> int:
    """The HTTP status of an engine error."""
    if isinstance(exc, PredefinedNetwork):
        return 403
    return STATUS_BY_KIND.get(exc.kind, 500)


def reply(data: Any, status: int = 200) -> web.Response:
    """A JSON answer typed exactly `application/json`: the docker CLI compares the header
    verbatim and prints the raw body for anything else (a `; charset=` suffix included)."""
    body = (json.dumps(data) + "\n").encode()
    return web.Response(body=body, status=status, content_type="application/json")


def error_response(status: int, message: str) -> web.Response:
    """Docker's error body."""
    return reply({"message": message}, status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map every error to `{"message"}` with its status; log real internal failures."""
    try:
        return await handler(request)
    except NetcoreError as exc:
        status = status_of(exc)
        if status >= 500:
            level = logging.WARNING if status == 503 else logging.ERROR
            log.log(level, "%s %s failed: %s", request.method, request.path, exc)
        return error_response(status, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp's own answers (unknown path, wrong method, body too large) in Docker's shape.
        if exc.status == 404 and (unsupported := unsupported_message(request.path)):
            return error_response(501, unsupported)
        message = "page not found" if exc.status == 404 else exc.reason
        response = error_response(exc.status, message)
        if "Allow" in exc.headers:  # 405 says which methods would work
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("%s %s: internal error", request.method, request.path)
        return error_response(500, "internal error: see the daemon's log")


def auth_middleware(token: str) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Require `Authorization: Bearer <token>` on every request (constant-time compare)."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            response = error_response(
                401, "missing or wrong API token: send the header 'Authorization: Bearer <token>'"
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="dnsd"'
            return response
        return await handler(request)

    return check_token


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def version_middleware(
    min_version: str,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Refuse `/v1.NN/` prefixes older than `min_version`, as Docker does.

    Newer ones are accepted: clients negotiate down via `/_ping`, and a script pinned to a newer
    version still gets the same network shapes.
    """

    @web.middleware
    async def check_version(request: web.Request, handler: Handler) -> web.StreamResponse:
        asked = request.match_info.get("version", "").lstrip("v")
        if asked and _version_tuple(asked) < _version_tuple(min_version):
            return error_response(
                400,
                f"client version {asked} is too old. Minimum supported API version is "
                f"{min_version}, please upgrade your client to a newer version",
            )
        return await handler(request)

    return check_version
