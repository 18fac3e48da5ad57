"""Checks of API responses shared by the API tests."""

from __future__ import annotations

import json
from typing import Any


async def json_body(resp: Any, status: int) -> Any:
    """The JSON body, after checking the status (the body is the failure message)."""
    text = await resp.text()
    assert resp.status == status, text
    return json.loads(text) if text.strip() else None


async def error_message(resp: Any, status: int, *fragments: str) -> str:
    """The error message, checked for Docker's shape, exact content type and `fragments`."""
    body = await json_body(resp, status)
    assert resp.headers["Content-Type"] == "application/json"  # the docker CLI needs it bare
    assert set(body) == {"message"}
    for fragment in fragments:
        assert fragment in body["message"], body["message"]
    return body["message"]
