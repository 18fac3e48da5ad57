"""`dnsd cni install [--dir DIR]`: make the plugin findable by runtimes as `dnsd`.

Runtimes look a plugin up by the `type` of its configuration in their plugin directories
(`/opt/cni/bin` by convention; Debian's Podman also `/usr/lib/cni`), so a symlink named `dnsd`
to the `dnsd-cni` script is all an installation needs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

DEFAULT_DIR = "/opt/cni/bin"
PLUGIN_TYPE = "dnsd"  # the `type` in network configurations


class InstallError(Exception):
    pass


def plugin_script() -> str:
    """The installed `dnsd-cni` console script (next to this Python, or on PATH)."""
    beside = Path(sys.executable).with_name("dnsd-cni")
    if beside.is_file():
        return str(beside)
    found = shutil.which("dnsd-cni")
    if found is None:
        raise InstallError(
            "dnsd-cni is not installed: install the package (pip install dnsd) or give --plugin"
        )
    return os.path.abspath(found)


def install(directory: str, target: str) -> Path:
    """Create (or replace) `directory/dnsd` -> `target`; the link's path."""
    if not os.access(target, os.X_OK):
        raise InstallError(f"{target} is not an executable file")
    link = Path(directory) / PLUGIN_TYPE
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            if link.is_dir() and not link.is_symlink():
                raise InstallError(f"{link} is a directory: remove it first")
            link.unlink()
        link.symlink_to(target)
    except OSError as exc:
        raise InstallError(f"cannot write {link}: {exc.strerror or exc}") from None
    return link


def cmd_install(args: argparse.Namespace) -> int:
    try:
        link = install(args.dir, args.plugin or plugin_script())
    except InstallError as exc:
        print(f"dnsd: {exc}", file=sys.stderr)
        return 1
    print(f"{link} -> {os.readlink(link)}")
    return 0


def add_parser(sub: Any) -> None:
    """`dnsd cni ...` on the main command line."""
    cni = sub.add_parser("cni", help="the CNI plugin (dnsd-cni)")
    actions = cni.add_subparsers(dest="action", required=True)
    p = actions.add_parser("install", help=f"symlink the plugin as {PLUGIN_TYPE} in a CNI dir")
    p.add_argument("--dir", default=DEFAULT_DIR, help="plugin directory (default %(default)s)")
    p.add_argument("--plugin", metavar="PATH", help="the plugin to link (default: dnsd-cni)")
    p.set_defaults(run_local=cmd_install)
