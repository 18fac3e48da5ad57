"""The OpenAPI 3 document of the API (`openapi.json` next to this file), served at
`/openapi.json` and checked against the app's routes by the tests.

Paths are written without the `/v1.NN` prefix; the app serves each one under any such prefix too.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any

_METHODS = ("get", "head", "post", "put", "patch", "delete")


@functools.cache
def _load() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("openapi.json").read_text(encoding="utf-8")
    return json.loads(text)


def build_document(version: str) -> dict[str, Any]:
    """The whole document, with the daemon's version (a fresh dict: callers may change it)."""
    document = copy.deepcopy(_load())
    document["info"]["version"] = version
    return document


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation of a document."""
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in _METHODS
    }
