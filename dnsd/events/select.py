"""Which events a watcher asked for: Docker's `since`/`until` timestamps and `filters`."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence

from netcore.errors import InvalidArgument

from .messages import CONTAINER, NETWORK, Event

FILTERS = ("type", "event", "network", "container")
_TIMESTAMP = re.compile(r"([0-9]+)(?:\.([0-9]{1,9}))?")


def parse_timestamp(value: str | None, field: str, now_ns: int | None = None) -> int | None:
    """Docker's `SECONDS[.NANOSECONDS]` (what the CLI sends for any --since/--until) in ns."""
    if value is None or value == "":
        return None
    match = _TIMESTAMP.fullmatch(value.strip())
    if match is None:
        raise InvalidArgument(
            f"{value!r} is not a Unix timestamp like 1700000000.000000000", field=field
        )
    seconds, fraction = match.group(1), match.group(2) or ""
    return int(seconds) * 1_000_000_000 + int(fraction.ljust(9, "0") or 0)


def now_ns() -> int:
    return time.time_ns()


def _fuzzy(values: Sequence[str], *sources: str) -> bool:
    """Docker's FuzzyMatch: a value equals a source or is a prefix of it."""
    return any(
        source and (source == v or source.startswith(v)) for v in values for source in sources
    )


def matches(event: Event, filters: Mapping[str, Sequence[str]]) -> bool:
    """Docker's filter rules: each given key must match. `event=health_status` matches every
    `health_status: ...`. `container` also matches the network events of that sandbox (Docker
    matches only container events); `network` matches network events by id or name."""
    kind, action = event["Type"], event["Action"]
    actor = event["Actor"]
    attributes = actor["Attributes"]
    if "type" in filters and kind not in filters["type"]:
        return False
    if "event" in filters and not any(
        action == v or action.partition(":")[0] == v for v in filters["event"]
    ):
        return False
    if "container" in filters:
        if kind == CONTAINER:
            sources: tuple[str, ...] = (actor["ID"], attributes.get("name", ""))
        else:
            sources = (attributes.get("container", ""),)
        if not _fuzzy(filters["container"], *sources):
            return False
    if "network" in filters:
        sources = (actor["ID"], attributes.get("name", "")) if kind == NETWORK else ()
        if not _fuzzy(filters["network"], *sources):
            return False
    return True
