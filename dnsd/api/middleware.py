"""The API's edge: errors to HTTP statuses, bearer-token auth, and typed reading of JSON bodies.

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

from netcore.errors import Conflict, ErrorKind, InvalidArgument, NetcoreError

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


# --- reading request bodies ---


async def json_object(request: web.Request) -> Fields:
    """The request body as a JSON object (an empty body is `{}`)."""
    raw = await request.read()
    if not raw.strip():
        return Fields({})
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidArgument(f"request body is not valid JSON: {exc}", field="body") from None
    if not isinstance(value, dict):
        raise InvalidArgument("request body must be a JSON object", field="body")
    return Fields(value)


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter as Docker writes them (`1`/`0`, `true`/`false`)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    low = raw.lower()
    if low in ("1", "true", "yes"):
        return True
    if low in ("0", "false", "no"):
        return False
    raise InvalidArgument(f"{raw!r} is not a boolean (true/false)", field=name)


def query_filters(request: web.Request, allowed: tuple[str, ...]) -> dict[str, list[str]]:
    """Docker's `filters` query parameter: `{"name":{"x":true}}` (or the old `{"name":["x"]}`)."""
    raw = request.query.get("filters", "")
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidArgument('is not JSON like {"name":{"x":true}}', field="filters") from None
    if not isinstance(value, dict):
        raise InvalidArgument("must be a JSON object", field="filters")
    out: dict[str, list[str]] = {}
    for key, values in value.items():
        if key not in allowed:
            raise InvalidArgument(
                f"invalid filter '{key}': use one of {', '.join(allowed)}", field="filters"
            )
        if isinstance(values, dict):
            values = list(values)
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidArgument(f"values of '{key}' must be strings", field="filters")
        out[key] = values
    return out


class Fields:
    """Typed access to one JSON object; every error names the field's full path.

    Unknown keys are ignored (Docker clients send fields we have no use for); `null` reads as
    absent, as in Go's JSON decoding.
    """

    def __init__(self, data: dict[str, Any], path: str = "") -> None:
        self._data = data
        self._path = path

    def name(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def _get(self, key: str) -> Any:
        return self._data.get(key)

    def _wrong(self, key: str, expected: str) -> InvalidArgument:
        got = type(self._get(key)).__name__
        return InvalidArgument(f"must be {expected}, not {got}", field=self.name(key))

    def string(self, key: str, default: str = "") -> str:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._wrong(key, "a string")
        return value

    def optional_string(self, key: str) -> str | None:
        """A string, with both absent and `""` reading as None (Docker's "not set")."""
        return self.string(key) or None

    def required_string(self, key: str) -> str:
        value = self.string(key)
        if not value:
            raise InvalidArgument("is required", field=self.name(key))
        return value

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._wrong(key, "true or false")
        return value

    def strings(self, key: str) -> tuple[str, ...] | None:
        """A list of strings; None when absent."""
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._wrong(key, "a list of strings")
        return tuple(value)

    def string_map(self, key: str) -> dict[str, str]:
        value = self._get(key)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self._wrong(key, "an object of strings")
        return dict(value)

    def raw(self, key: str) -> Any:
        return self._get(key)

    def object(self, key: str) -> Fields:
        value = self._get(key)
        if value is None:
            return Fields({}, self.name(key))
        if not isinstance(value, dict):
            raise self._wrong(key, "an object")
        return Fields(value, self.name(key))

    def objects(self, key: str) -> list[Fields]:
        value = self._get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self._wrong(key, "a list of objects")
        return [Fields(v, f"{self.name(key)}[{i}]") for i, v in enumerate(value)]

    def refuse_truthy(self, key: str, why: str) -> None:
        """Refuse a known Docker field this daemon cannot honour, rather than ignore it."""
        if self._get(key):
            raise InvalidArgument(why, field=self.name(key))


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
