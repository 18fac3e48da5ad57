"""`State.Health` in Docker's shape (`docker inspect` field names)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .state import Health, Result


def rfc3339_nano(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}000Z"


def _result_shape(result: Result) -> dict[str, Any]:
    return {
        "Start": rfc3339_nano(result.start),
        "End": rfc3339_nano(result.end),
        "ExitCode": result.exit_code,
        "Output": result.output,
    }


def health_shape(health: Health) -> dict[str, Any]:
    return {
        "Status": health.status,
        "FailingStreak": health.failing_streak,
        "Log": [_result_shape(result) for result in health.log],
    }
