"""A sandbox's health check in Docker's shape, read and checked once at the edge.

`{"Test": [...], "Interval": ns, "Timeout": ns, "Retries": n, "StartPeriod": ns, "User": ""}`
where `Test` is `["NONE"]`, `["TCP", "PORT"]`, `["HTTP", "PORT", "/PATH"]`, `["CMD", arg...]`
or `["CMD-SHELL", "command"]`. Durations are nanoseconds like Docker's; 0 means the default.
The daemon runs the checks (dnsd.health); the engine only keeps them with the sandbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidArgument

KINDS = ("NONE", "TCP", "HTTP", "CMD", "CMD-SHELL")
MS = 1_000_000
SECOND = 1000 * MS
DEFAULT_INTERVAL_NS = 30 * SECOND  # Docker's defaults
DEFAULT_TIMEOUT_NS = 30 * SECOND
DEFAULT_RETRIES = 3
MIN_INTERVAL_NS = 100 * MS  # faster would be a load test, not a health check
MIN_TIMEOUT_NS = MS
MAX_DURATION_NS = 24 * 3600 * SECOND
MAX_COMMAND_BYTES = 4096
MAX_RETRIES = 1000


@dataclass(frozen=True, slots=True)
class Healthcheck:
    """A validated check; `interval_s` etc. apply the defaults."""

    test: tuple[str, ...]
    interval_ns: int = 0
    timeout_ns: int = 0
    retries: int = 0
    start_period_ns: int = 0
    user: str = ""  # CMD checks run as this user (default: nobody)

    @property
    def kind(self) -> str:
        return self.test[0]

    @property
    def disabled(self) -> bool:
        return self.kind == "NONE"

    @property
    def interval_s(self) -> float:
        return (self.interval_ns or DEFAULT_INTERVAL_NS) / SECOND

    @property
    def timeout_s(self) -> float:
        return (self.timeout_ns or DEFAULT_TIMEOUT_NS) / SECOND

    @property
    def start_period_s(self) -> float:
        return self.start_period_ns / SECOND

    @property
    def effective_retries(self) -> int:
        return self.retries or DEFAULT_RETRIES

    def docker_shape(self) -> dict[str, Any]:
        shape: dict[str, Any] = {
            "Test": list(self.test),
            "Interval": self.interval_ns,
            "Timeout": self.timeout_ns,
            "Retries": self.retries,
            "StartPeriod": self.start_period_ns,
        }
        if self.user:
            shape["User"] = self.user
        return shape


def parse_healthcheck(value: object, field: str = "Healthcheck") -> Healthcheck | None:
    """Docker's Healthcheck object as a `Healthcheck`; None when absent or `Test` is empty
    (Docker: no check). Every refusal is an InvalidArgument naming the field."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidArgument('must be an object like {"Test": ["TCP", "80"]}', field=field)
    test = value.get("Test")
    if test is None or test == []:
        return None
    if not isinstance(test, list) or not all(isinstance(t, str) for t in test):
        raise InvalidArgument("must be a list of strings", field=f"{field}.Test")
    user = value.get("User") or ""
    if not isinstance(user, str) or any(c.isspace() or c == ":" for c in user):
        raise InvalidArgument("must be a user name or uid", field=f"{field}.User")
    check = Healthcheck(
        test=_test(tuple(test), f"{field}.Test"),
        interval_ns=_duration(value, "Interval", field, MIN_INTERVAL_NS),
        timeout_ns=_duration(value, "Timeout", field, MIN_TIMEOUT_NS),
        retries=_count(value, "Retries", field),
        start_period_ns=_duration(value, "StartPeriod", field, 0),
        user=user,
    )
    return check


def _test(test: tuple[str, ...], field: str) -> tuple[str, ...]:
    kind = test[0]
    if kind not in KINDS:
        raise InvalidArgument(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}", field=field)
    if sum(len(arg.encode()) for arg in test) > MAX_COMMAND_BYTES:
        raise InvalidArgument(f"command longer than {MAX_COMMAND_BYTES} bytes", field=field)
    if kind == "NONE" and len(test) != 1:
        raise InvalidArgument('["NONE"] takes no arguments', field=field)
    if kind == "TCP":
        if len(test) != 2:
            raise InvalidArgument('must be ["TCP", "PORT"]', field=field)
        _port(test[1], field)
    if kind == "HTTP":
        if len(test) not in (2, 3):
            raise InvalidArgument('must be ["HTTP", "PORT", "/PATH"]', field=field)
        _port(test[1], field)
        path = test[2] if len(test) == 3 else "/"
        if not path.startswith("/") or any(c.isspace() or ord(c) < 32 for c in path):
            raise InvalidArgument(f"{path!r} is not a path starting with /", field=field)
        test = (kind, test[1], path)
    if kind in ("CMD", "CMD-SHELL") and (len(test) < 2 or not test[1]):
        raise InvalidArgument(f'{kind} needs a command, e.g. ["{kind}", "true"]', field=field)
    if kind == "CMD-SHELL" and len(test) != 2:
        raise InvalidArgument('must be ["CMD-SHELL", "one command line"]', field=field)
    if any("\0" in arg for arg in test):
        raise InvalidArgument("must not contain NUL characters", field=field)
    return test


def _port(value: str, field: str) -> None:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise InvalidArgument(f"{value!r} is not a port (1-65535)", field=field)


def _duration(value: Mapping[str, Any], key: str, field: str, minimum: int) -> int:
    ns = value.get(key)
    if ns is None:
        return 0
    if isinstance(ns, bool) or not isinstance(ns, int):
        raise InvalidArgument("must be an integer of nanoseconds", field=f"{field}.{key}")
    if ns < 0:
        raise InvalidArgument("must not be negative", field=f"{field}.{key}")
    if 0 < ns < minimum:
        raise InvalidArgument(
            f"must be at least {minimum // MS} ms ({minimum} ns), or 0 for the default",
            field=f"{field}.{key}",
        )
    if ns > MAX_DURATION_NS:
        raise InvalidArgument("must be at most 24 hours", field=f"{field}.{key}")
    return ns


def _count(value: Mapping[str, Any], key: str, field: str) -> int:
    n = value.get(key)
    if n is None:
        return 0
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_RETRIES:
        raise InvalidArgument(f"must be an integer 0..{MAX_RETRIES}", field=f"{field}.{key}")
    return n


def healthcheck_from_dict(d: Mapping[str, Any] | None) -> Healthcheck | None:
    """The stored form (`to_dict` of a Healthcheck) back; None for rows without one."""
    if not d:
        return None
    return Healthcheck(
        test=tuple(d["test"]),
        interval_ns=int(d.get("interval_ns", 0)),
        timeout_ns=int(d.get("timeout_ns", 0)),
        retries=int(d.get("retries", 0)),
        start_period_ns=int(d.get("start_period_ns", 0)),
        user=d.get("user", ""),
    )
