"""The registry HTTP API: Docker-compatible `/networks`, plus `/sandboxes`."""

from .app import create_app, start_tcp, start_unix
from .shapes import API_VERSION

__all__ = ["API_VERSION", "create_app", "start_tcp", "start_unix"]
