"""`dnsd sandbox create --health-*`: Docker's health flags, as the API's Healthcheck object."""

from __future__ import annotations

import argparse
import re
from typing import Any


class HealthFlagError(ValueError):
    """A --health-* option that cannot be read (the command line reports it)."""


_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
          "h": 3600 * 10**9}  # fmt: skip
_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?)(ns|us|µs|ms|s|m|h)")

FLAGS: tuple[tuple[Any, ...], ...] = (
    ("--health-cmd", {"metavar": "COMMAND", "help": "run in the sandbox's namespace (sh -c)"}),
    ("--health-tcp", {"metavar": "PORT", "help": "connect to PORT on the sandbox's address"}),
    ("--health-http", {"metavar": "PORT/PATH", "help": "GET it; 2xx and 3xx are healthy"}),
    ("--health-interval", {"metavar": "DURATION", "help": "e.g. 2s (default 30s, at least 100ms)"}),
    ("--health-timeout", {"metavar": "DURATION", "help": "default 30s"}),
    ("--health-retries", {"type": int, "metavar": "N", "help": "failures in a row (default 3)"}),
    ("--health-start-period", {"metavar": "DURATION", "help": "failures then do not count"}),
    ("--health-user", {"metavar": "USER", "help": "whom --health-cmd runs as (default nobody)"}),
)


def duration_ns(text: str, flag: str) -> int:
    """Go's duration syntax (`1m30s`, `500ms`, `2s`) in nanoseconds."""
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise HealthFlagError(f"{flag} {text!r}: give a duration like 2s, 500ms or 1m30s")
    return int(total)


def healthcheck(args: argparse.Namespace) -> dict[str, Any] | None:
    """The Healthcheck body of the health flags; None when no check is asked for."""
    tests = []
    if args.health_cmd:
        tests.append(["CMD-SHELL", args.health_cmd])
    if args.health_tcp:
        tests.append(["TCP", args.health_tcp])
    if args.health_http:
        port, slash, path = args.health_http.partition("/")
        tests.append(["HTTP", port, slash + path or "/"])
    if len(tests) > 1:
        raise HealthFlagError("give one of --health-cmd, --health-tcp and --health-http")
    timing = {
        ("Interval", "--health-interval"): args.health_interval,
        ("Timeout", "--health-timeout"): args.health_timeout,
        ("StartPeriod", "--health-start-period"): args.health_start_period,
    }
    if not tests:
        if any(timing.values()) or args.health_retries is not None or args.health_user:
            raise HealthFlagError("the --health-* options need --health-cmd, -tcp or -http")
        return None
    body: dict[str, Any] = {"Test": tests[0]}
    for (key, flag), value in timing.items():
        if value:
            body[key] = duration_ns(value, flag)
    if args.health_retries is not None:
        body["Retries"] = args.health_retries
    if args.health_user:
        body["User"] = args.health_user
    return body
