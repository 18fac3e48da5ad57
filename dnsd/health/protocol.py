"""The probe worker's protocol: JSON lines over its stdin (commands) and stdout (results).

Daemon -> worker, one command a line:
  {"op": "start", "key": K, "check": {Healthcheck fields}, "target": [NETNS, ADDRESS|null]}
  {"op": "retarget", "key": K, "target": [NETNS, ADDRESS|null]}
  {"op": "stop", "key": K}
Worker -> daemon, results batched a line at a time:
  {"results": [[K, START, END, EXIT_CODE, OUTPUT], ...]}
`K` is the monitor's token for one sandbox's check; a restarted check gets a new one, so a
result still in the pipe for the old check is recognised and dropped.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from netcore.healthcheck import Healthcheck

from .probes import Target
from .state import Result


class ProtocolError(ValueError):
    """A line that is not a command or a batch of this protocol."""


def start(key: int, check: Healthcheck, target: Target) -> bytes:
    fields = dataclasses.asdict(check)
    return _line({"op": "start", "key": key, "check": fields, "target": _target(target)})


def retarget(key: int, target: Target) -> bytes:
    return _line({"op": "retarget", "key": key, "target": _target(target)})


def stop(key: int) -> bytes:
    return _line({"op": "stop", "key": key})


def results(batch: Sequence[tuple[int, Result]]) -> bytes:
    rows = [[key, r.start, r.end, r.exit_code, r.output] for key, r in batch]
    return _line({"results": rows})


def read_command(line: bytes) -> tuple[str, int, Healthcheck | None, Target | None]:
    """(op, key, check, target) of one command line; check and target None where absent."""
    try:
        message = json.loads(line)
        op, key = message["op"], int(message["key"])
        check = message.get("check")
        target = message.get("target")
        return (
            op,
            key,
            None if check is None else Healthcheck(**{**check, "test": tuple(check["test"])}),
            None if target is None else Target(*target),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"bad command line {line[:200]!r}: {exc}") from None


def read_results(line: bytes) -> list[tuple[int, Result]]:
    try:
        rows = json.loads(line)["results"]
        return [(int(key), Result(start, end, code, out)) for key, start, end, code, out in rows]
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"bad results line {line[:200]!r}: {exc}") from None


def _target(target: Target) -> list[Any]:
    return [target.netns, target.address]


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"
