"""Score messages with the locally installed (Debian) SpamAssassin.

Two ways, same result type:

* :func:`check` runs ``spamassassin --local`` once per message (simple,
  ~2 s per message because the rule set is loaded every time);
* :class:`Spamd` / :func:`spamd_server` starts one private ``spamd`` on a
  free loopback port (loads the rules once, ~2 s) and scores each message
  over the spamd protocol (``HEADERS`` command, no ``spamc`` binary
  needed) in ~0.1-0.25 s.

Only local tests run (``--local``: no DNS/URIBL/Razor/Pyzor), Bayes and
auto-whitelisting are off and no user preferences are read, so results are
deterministic.  The shipped rules in ``/usr/share/spamassassin`` are used
(or those from ``sa-update`` in ``/var/lib/spamassassin`` if present).

Per-rule scores come from an extra header we ask SpamAssassin to add
(``add_header all Tests _TESTSSCORES(,)_`` -> ``X-Spam-Tests:
HTML_MESSAGE=0.001,MIME_HTML_ONLY=0.1``).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.daemons import stop_daemon

SPAMASSASSIN = "/usr/bin/spamassassin"
SPAMD = "/usr/sbin/spamd"
RULE_DIRS = (Path("/var/lib/spamassassin"), Path("/usr/share/spamassassin"))

CF_LINES = (
    "add_header all Tests _TESTSSCORES(,)_",
    "report_safe 0",
    "use_bayes 0",
    "bayes_auto_learn 0",
    "use_auto_whitelist 0",
    "skip_rbl_checks 1",
    "dns_available no",
)


def available(daemon: bool = False) -> str | None:
    """Return None if SpamAssassin (and spamd if ``daemon``) is usable."""
    if not os.path.exists(SPAMASSASSIN):
        return "spamassassin not installed: apt-get install spamassassin"
    if daemon and not os.path.exists(SPAMD):
        return "spamd not installed: apt-get install spamd (or spamassassin)"
    if not any(d.is_dir() and any(d.rglob("*.cf")) for d in RULE_DIRS):
        return "no SpamAssassin rules found (run sa-update)"
    return None


@dataclass
class SpamResult:
    score: float
    required: float
    rules: list[tuple[str, float]]
    is_spam: bool
    seconds: float = 0.0
    headers: str = field(default="", repr=False)

    @property
    def rule_names(self) -> list[str]:
        return [name for name, _ in self.rules]


def _header_block(data: bytes) -> dict[str, str]:
    """Unfolded headers of a message (first occurrence wins)."""
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    head = text.split("\n\n", 1)[0]
    out: dict[str, str] = {}
    name = ""
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and name:
            out[name] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            name = key.strip().lower()
            if name in out:
                name = ""  # ignore later duplicates (e.g. forged headers)
            else:
                out[name] = value.strip()
    return out


def parse_result(data: bytes, seconds: float = 0.0) -> SpamResult:
    """Build a SpamResult from the headers SpamAssassin added to ``data``."""
    headers = _header_block(data)
    status = headers.get("x-spam-status")
    if status is None:
        raise ValueError("no X-Spam-Status header in SpamAssassin output")
    m = re.search(r"score=(-?[\d.]+)\s+required=(-?[\d.]+)", status)
    if not m:
        raise ValueError(f"cannot parse X-Spam-Status: {status!r}")
    rules: list[tuple[str, float]] = []
    for item in re.split(r"[,\s]+", headers.get("x-spam-tests", "")):
        if "=" in item:
            name, value = item.split("=", 1)
            rules.append((name, float(value)))
    return SpamResult(
        score=float(m.group(1)),
        required=float(m.group(2)),
        rules=rules,
        is_spam=status.lower().startswith("yes"),
        seconds=seconds,
        headers="\n".join(f"{k}: {v}" for k, v in headers.items() if k.startswith("x-spam")),
    )


def check(message: bytes, timeout: float = 60.0) -> SpamResult:
    """Score one message with a fresh ``spamassassin --local`` process."""
    reason = available()
    if reason:
        raise RuntimeError(reason)
    with tempfile.TemporaryDirectory(prefix="sa-") as tmp:
        prefs = Path(tmp) / "user_prefs"
        prefs.write_text("")
        cmd = [SPAMASSASSIN, "--local", "--nocreate-prefs", f"--prefspath={prefs}"]
        cmd += [f"--cf={line}" for line in CF_LINES]
        t0 = time.monotonic()
        proc = subprocess.run(
            cmd,
            input=message,
            capture_output=True,
            timeout=timeout,
            env={**os.environ, "HOME": tmp},
        )
        seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"spamassassin failed ({proc.returncode}): {proc.stderr.decode()}")
    return parse_result(proc.stdout, seconds)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Spamd:
    port: int
    host: str = "127.0.0.1"
    startup_seconds: float = 0.0

    def _request(self, command: str, body: bytes = b"", timeout: float = 60.0) -> bytes:
        head = f"{command} SPAMC/1.5\r\nContent-length: {len(body)}\r\n\r\n"
        with socket.create_connection((self.host, self.port), timeout=timeout) as s:
            s.sendall(head.encode() + body)
            s.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def ping(self) -> bool:
        try:
            return b"PONG" in self._request("PING", timeout=2)
        except OSError:
            return False

    def check(self, message: bytes) -> SpamResult:
        """Score ``message`` via spamd's HEADERS command."""
        if not message.endswith(b"\n"):
            message += b"\r\n"
        t0 = time.monotonic()
        reply = self._request("HEADERS", message)
        seconds = time.monotonic() - t0
        status, _, rest = reply.partition(b"\r\n")
        if b" 0 EX_OK" not in status:
            raise RuntimeError(f"spamd error: {status!r}")
        _, _, headers = rest.partition(b"\r\n\r\n")
        return parse_result(headers, seconds)






@contextmanager
def spamd_server(timeout: float = 60.0) -> Iterator[Spamd]:
    """Start a private spamd on a free loopback port; stop it on exit."""
    reason = available(daemon=True)
    if reason:
        raise RuntimeError(reason)
    tmp = Path(tempfile.mkdtemp(prefix="spamd-"))
    tmp.chmod(0o755)
    server = Spamd(port=free_port())
    cmd = [
        SPAMD,
        "--local",
        "--nouser-config",
        f"--listen=127.0.0.1:{server.port}",
        "--max-children=1",
        "--min-children=1",
        "--syslog=stderr",
        f"--pidfile={tmp / 'spamd.pid'}",
    ]
    if os.geteuid() == 0:  # spamd children must not run as root
        for user in ("debian-spamd", "nobody"):
            try:
                pwd.getpwnam(user)
            except KeyError:
                continue
            cmd.append(f"--username={user}")
            break
    cmd += [f"--cf={line}" for line in CF_LINES]
    log = tmp / "spamd.log"
    t0 = time.monotonic()
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            start_new_session=True,
            env={**os.environ, "HOME": str(tmp)},
        )
    try:
        deadline = time.monotonic() + timeout
        while not server.ping():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"spamd did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        server.startup_seconds = time.monotonic() - t0
        yield server
    finally:
        stop_daemon(proc)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def spamd() -> Iterator[Spamd]:
    """One private spamd for the whole test session (skips if unavailable)."""
    reason = available(daemon=True)
    if reason:
        pytest.skip(reason)
    with spamd_server() as server:
        yield server
