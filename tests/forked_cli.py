"""``digest`` commands in real processes of their own, without the interpreter's start each time.

Starting ``python -m digest`` costs about a second on the 2-core machine (interpreter and
imports), and the crash and scale-out tests start a dozen senders each. Here one server process
(multiprocessing's forkserver) imports ``digest.cli`` once; every command is a fresh ``fork()``
of it that takes its own environment, folder, stdout and stderr, and runs ``digest.cli.main``
exactly as ``python -m digest`` does. Each is a process of its own: its own pid, database
connections, locks and reply journal, and SIGKILL kills it like any other.
``tests/test_cli.py`` still checks ``python -m digest`` itself.

``run_digest(...)`` returns a ``Popen``-like handle: ``pid``, ``send_signal``, ``poll``,
``wait``, ``communicate``, ``returncode`` (negative: killed by that signal).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import tempfile
from pathlib import Path

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["digest.cli"])


def _main(argv: list[str], env: dict[str, str], cwd: str, out: Path, err: Path) -> None:
    """In the forked child: become ``digest ARGV`` run from ``cwd`` with ``env``."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    from digest.cli import main

    main(argv, prog_name="digest")  # exits: click's SystemExit is the process's exit code


class DigestProcess:
    """A running ``digest`` command; the parts of ``subprocess.Popen`` the tests use."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="digest-proc-")
        self._out = Path(self._dir.name, "stdout")
        self._err = Path(self._dir.name, "stderr")
        for path in (self._out, self._err):  # there to read even if the child never starts
            path.touch()
        self._process = _CONTEXT.Process(target=_main, daemon=True,
                                         args=(argv, env, str(cwd), self._out, self._err))
        self._process.start()
        assert self._process.pid is not None
        self.pid: int = self._process.pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._process.exitcode
        return self.returncode

    def send_signal(self, sig: signal.Signals) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        if self.poll() is None:
            self._process.join(timeout)
            if self.poll() is None:
                raise subprocess.TimeoutExpired(f"digest (pid {self.pid})", timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Wait for the end, then (stdout, stderr) as text."""
        self.wait(timeout)
        return (self._out.read_text(encoding="utf-8"), self._err.read_text(encoding="utf-8"))


def run_digest(*argv: str, env: dict[str, str], cwd: Path) -> DigestProcess:
    """Start ``digest ARGV`` (as ``python -m digest ARGV`` would run) in a forked process."""
    return DigestProcess(list(argv), env, cwd)


__all__ = ["DigestProcess", "run_digest"]
