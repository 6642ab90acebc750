"""The run lock: a second holder is refused (exit code 75), and a killed holder frees it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import Engine

from digest.config.errors import LockHeld
from digest.config.settings import Settings
from digest.delivery.run_lock import RunLock, lock_path

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from digest.store.engine import make_engine
    from digest.delivery.run_lock import RunLock
    from digest.config.settings import Settings
    engine = make_engine(sys.argv[1])
    with RunLock(engine, Settings(database_url=sys.argv[1], lock_dir=Path(sys.argv[2]))):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_second_holder_is_refused_until_released(engine: Engine, settings: Settings) -> None:
    with RunLock(engine, settings):
        with pytest.raises(LockHeld) as info:
            RunLock(engine, settings).acquire()
        assert info.value.exit_code == 75
        assert "nothing was sent" in info.value.message
    with RunLock(engine, settings):  # released: free again
        pass


def test_a_killed_holder_leaves_no_stale_lock(engine: Engine, settings: Settings) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, settings.database_url,
                               str(settings.lock_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeld):
            RunLock(engine, settings).acquire()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        lock = RunLock(engine, settings)
        lock.acquire()
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_lock_file_sits_next_to_the_database_without_lock_dir(engine: Engine,
                                                              settings: Settings) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the lock file is the SQLite lock; PostgreSQL uses an advisory lock")
    from dataclasses import replace

    path = lock_path(engine, replace(settings, lock_dir=None))
    assert path.name == "digest.db.lock" and path.parent == lock_path(engine, settings).parent
