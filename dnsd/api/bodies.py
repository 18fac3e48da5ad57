"""Typed reading of what a request carries: its JSON body and Docker's `filters` parameter.

Every mistake is an `InvalidArgument` naming the field's full path (`IPAM.Config[0].Subnet`), so
the error middleware answers 400 with a message that says what to fix.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from netcore.errors import InvalidArgument


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
