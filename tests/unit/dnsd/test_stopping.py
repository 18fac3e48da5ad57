"""The bounded stop: a process held up by a hanging thread exits anyway, naming the thread."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

HANGS = textwrap.dedent(
    """
    import logging, threading, time
    from dnsd.stopping import exit_after

    logging.basicConfig(level=logging.WARNING)

    def stuck_in_a_job():
        threading.Event().wait()

    threading.Thread(target=stuck_in_a_job, name="engine-call").start()  # joined at exit
    exit_after(0.3, 3, "dnsd stopped, worker threads still busy")
    """
)


def test_a_thread_that_hangs_does_not_hold_the_exit_and_is_named():
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", HANGS], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 3
    assert time.monotonic() - started < 10
    assert "worker threads still busy after 0.3 s" in proc.stderr
    assert "thread engine-call" in proc.stderr and "stuck_in_a_job" in proc.stderr


def test_a_process_that_exits_on_its_own_is_not_cut_short():
    quick = "from dnsd.stopping import exit_after\nexit_after(5.0, 3, 'x')\n"
    proc = subprocess.run([sys.executable, "-c", quick], capture_output=True, text=True)
    assert proc.returncode == 0 and "exiting anyway" not in proc.stderr
