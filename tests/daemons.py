"""Stopping a real server a test started (Postfix, Dovecot, spamd): the whole of it, quickly.

Each daemon is started in a process group of its own (``start_new_session``). Stopping it
means: SIGTERM, then wait until every process of the group has exited -- its workers too, which
hold the ports and files the next test wants -- with SIGKILL to the group past the timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import suppress
from pathlib import Path

__all__ = ["group_running", "stop_daemon"]


def group_running(group: int) -> bool:
    """Whether a process of ``group`` has not exited yet. A zombie has: a master exits at
    once and its processes are left for whoever inherits them to reap, which here (PID 1 of
    the container) takes a second or more."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, IndexError):
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if int(pgrp) == group and state != "Z":
                return True
    return False


def stop_daemon(proc: subprocess.Popen[bytes], timeout: float = 10.0, *,
                whole_group: bool = False) -> None:
    """SIGTERM the daemon (``whole_group``: every process of its group, for a master that
    would otherwise wait seconds for its processes to notice), then wait until all of the
    group has exited."""
    if proc.poll() is None:
        if whole_group:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while group_running(proc.pid):
        if time.monotonic() > deadline:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.05)
    proc.wait()
