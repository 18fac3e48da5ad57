"""A small helper process that applies nft scripts with libnftables inside given namespaces.

Why a process: libnftables waits on its netlink socket with select(2), which aborts the whole
process (glibc's fortify check) when that socket's descriptor is above 1,023, and a daemon with
hundreds of sandboxes has thousands of descriptors. The helper has a handful, so the library is
safe there, and it keeps what made it worth using: no fork and exec per namespace (~20 ms),
~1 ms per script. Run as `python -m netcore.nft.helper`; one request per line on stdin
(`{"netns": path, "script": text}`), one JSON reply per line on stdout (`{"error": null}`).
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

_CLONE_NEWNET = 0x40000000


def serve() -> None:
    from .inproc import NftLib

    libc = ctypes.CDLL(None, use_errno=True)
    lib = NftLib.load()
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    out = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        error: str | None = None
        try:
            fd = os.open(request["netns"], os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            try:
                if lib is None:
                    raise RuntimeError("libnftables.so.1 is not installed")
                lib.apply_here(request["script"])
            finally:
                if libc.setns(home, _CLONE_NEWNET) != 0:  # never keep a namespace alive
                    raise OSError(ctypes.get_errno(), "setns home")
        except Exception as exc:  # reported to the daemon, which raises it there
            error = f"{type(exc).__name__}: {exc}"
        out.write(json.dumps({"error": error}) + "\n")
        out.flush()


if __name__ == "__main__":
    serve()
