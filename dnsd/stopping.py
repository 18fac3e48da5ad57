"""A bounded stop: a SIGTERM'd daemon exits in seconds even when a worker thread hangs.

The clean stop (listeners closed, store closed) is quick; what can hold the process after it
is a thread still in a blocking job (an engine call, a reconcile, a namespace job): the event
loop's runner and the interpreter's exit wait for every such thread, without limit. A stop
that the harness saw take 20 s (then SIGKILL) was one. The watchdog logs what each thread is
doing, so the next one is named, and exits.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback

log = logging.getLogger(__name__)

STOP_DEADLINE_S = 10.0  # SIGTERM to exit, whatever hangs in the clean stop itself
LINGER_S = 1.0  # after the clean stop: threads still finishing a job are not waited for longer


def exit_after(seconds: float, code: int, what: str) -> None:
    """Exit the process with `code` in `seconds` unless it has exited by then, logging every
    other thread's stack first (a daemon thread: it never holds the exit up itself)."""

    def watch() -> None:
        time.sleep(seconds)
        log.warning(
            "%s after %.1f s: exiting anyway; threads still running:\n%s",
            what,
            seconds,
            thread_stacks(),
        )
        logging.shutdown()
        os._exit(code)

    threading.Thread(target=watch, name="stop-watchdog", daemon=True).start()


def thread_stacks() -> str:
    """Every thread's stack but the caller's, innermost call last."""
    frames = sys._current_frames()
    me = threading.get_ident()
    parts = []
    for thread in threading.enumerate():
        frame = frames.get(thread.ident or -1)
        if thread.ident == me or frame is None or thread.name == "stop-watchdog":
            continue
        stack = "".join(traceback.format_stack(frame, limit=12))
        parts.append(f"thread {thread.name} (daemon={thread.daemon}):\n{stack}")
    return "\n".join(parts) or "(none)"
