"""Docker endpoints dnsd does not serve: 501 with a message that says so, not `page not found`.

`docker ps` or `docker run` pointed at dnsd (DOCKER_HOST) then prints why nothing happened.
"""

from __future__ import annotations

import re

# Top-level resources of the Docker Engine API outside the network API.
DOCKER_RESOURCES = frozenset(
    ("auth", "build", "commit", "configs", "containers", "distribution", "events", "exec",
     "grpc", "images", "nodes", "plugins", "secrets", "services", "session", "swarm", "system",
     "tasks", "volumes")
)  # fmt: skip
_PATH = re.compile(r"^(?:/v[0-9]{1,3}\.[0-9]{1,3})?/([a-z]+)")


def unsupported_message(path: str) -> str | None:
    """The 501 message for a Docker endpoint we do not serve, or None for any other path."""
    match = _PATH.match(path)
    if match is None or match.group(1) not in DOCKER_RESOURCES:
        return None
    return f"dnsd serves Docker's network API only: /{match.group(1)} is not supported"
