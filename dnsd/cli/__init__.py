"""`dnsd`: run the daemon (`serve`), or drive it (`network ...`, `sandbox ...`) over its socket.

Client commands print tables for people and `--format json` for scripts; errors go to stderr with
the daemon's message and a non-zero exit status.

`parser` builds the command line, `commands` runs the client commands through `api_client` (the
HTTP client of the daemon's socket), `serve` starts the daemon.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .api_client import ApiError
from .commands import UsageError, api_client
from .parser import build_parser
from .serve import cmd_serve

EXIT_USAGE = 2

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """The `dnsd` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return cmd_serve(args)
        if hasattr(args, "run_local"):  # needs no daemon (`cni install`)
            return int(args.run_local(args))
        return int(args.run(api_client(args), args) or 0)
    except UsageError as exc:
        print(f"dnsd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApiError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
