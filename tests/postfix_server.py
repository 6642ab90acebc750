"""Run a private, throw-away Postfix instance for tests.

The instance lives entirely in a temporary directory (its own
``config_directory``, ``queue_directory`` and ``data_directory``), listens
for SMTP on ``127.0.0.1:<free port>`` only and never relays: every recipient
in every domain is accepted and delivered by the ``virtual(8)`` agent into
one catch-all Maildir (``<tmp>/mail/catchall/``).  The ``master(8)`` daemon
runs in the foreground (``master -c DIR -d``) as a child of the test
process, so stopping it is a plain SIGTERM.  Nothing of the system Postfix
(``/etc/postfix/main.cf``, ``/var/spool/postfix``, systemd) is used or
touched, except the installed binaries and ``$meta_directory/postfix-files``.

Postfix has to be started as root (``master`` insists on it).

Usage::

    with postfix_server(tls=True) as pf:
        with smtplib.SMTP(pf.host, pf.port) as s:
            s.starttls(context=pf.client_ssl_context())
            s.sendmail("a@example.org", ["b@example.org"], raw)
        [msg] = pf.wait_for_messages(1)
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.daemons import stop_daemon

POSTFIX = "/usr/sbin/postfix"
DAEMON_DIR = Path("/usr/lib/postfix/sbin")
MAIL_OWNER = "postfix"

MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix n - n 60 1 pickup
cleanup   unix n - n -  0 cleanup
qmgr      unix n - n 300 1 qmgr
tlsmgr    unix - - n 1000? 1 tlsmgr
rewrite   unix - - n -  - trivial-rewrite
bounce    unix - - n -  0 bounce
defer     unix - - n -  0 bounce
trace     unix - - n -  0 bounce
verify    unix - - n -  1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n -  - proxymap
proxywrite unix - - n - 1 proxymap
smtp      unix - - n -  - smtp
relay     unix - - n -  - smtp
showq     unix n - n -  - showq
error     unix - - n -  - error
retry     unix - - n -  - error
discard   unix - - n -  - discard
local     unix - n n -  - local
virtual   unix - n n -  - virtual
lmtp      unix - - n -  - lmtp
anvil     unix - - n -  1 anvil
scache    unix - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def available() -> str | None:
    """Return None if a private Postfix can be started, else why not."""
    if not (os.path.exists(POSTFIX) and (DAEMON_DIR / "master").exists()):
        return "postfix not installed: apt-get install postfix"
    if os.geteuid() != 0:
        return "postfix master must run as root"
    try:
        pwd.getpwnam(MAIL_OWNER)
    except KeyError:
        return f"system user {MAIL_OWNER!r} missing (reinstall postfix)"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostfixServer:
    root: Path
    port: int
    host: str = "127.0.0.1"
    ca_pem: bytes | None = None
    startup_seconds: float = 0.0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    @property
    def maildir(self) -> Path:
        return self.root / "mail" / "catchall"

    @property
    def log_file(self) -> Path:
        return self.root / "maillog"

    def client_ssl_context(self) -> ssl.SSLContext:
        """SSL context trusting the instance's test CA (STARTTLS mode)."""
        if self.ca_pem is None:
            raise RuntimeError("server was started without tls=True")
        return ssl.create_default_context(cadata=self.ca_pem.decode())

    def message_files(self) -> list[Path]:
        new = self.maildir / "new"
        if not new.is_dir():
            return []
        return sorted(new.iterdir(), key=lambda p: (p.stat().st_mtime, p.name))

    def messages(self) -> list[bytes]:
        return [p.read_bytes() for p in self.message_files()]

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[bytes]:
        """Wait until at least ``count`` messages were delivered; return all."""
        deadline = time.monotonic() + timeout
        while True:
            files = self.message_files()
            if len(files) >= count:
                return [p.read_bytes() for p in files]
            if time.monotonic() > deadline:
                log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
                raise TimeoutError(
                    f"{len(files)}/{count} messages delivered; maillog tail:\n{log[-3000:]}"
                )
            time.sleep(0.05)

    def clear(self) -> None:
        for p in self.message_files():
            p.unlink()


def _write_config(root: Path, port: int, cert: Path | None, key: Path | None) -> None:
    etc = root / "etc"
    etc.mkdir(mode=0o755)
    pw = pwd.getpwnam(MAIL_OWNER)
    for sub in ("queue", "data"):
        (root / sub).mkdir(mode=0o755)
    os.chown(root / "data", pw.pw_uid, pw.pw_gid)
    mail = root / "mail"
    mail.mkdir(mode=0o755)
    # virtual(8) delivers with the privileges of the mailbox owner.
    os.chown(mail, pw.pw_uid, pw.pw_gid)
    lines = {
        "compatibility_level": "3.6",
        "queue_directory": str(root / "queue"),
        "data_directory": str(root / "data"),
        "mail_owner": MAIL_OWNER,
        "myhostname": "digest-test.localhost",
        "mydomain": "localhost",
        "myorigin": "$myhostname",
        "mydestination": "",
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        "alias_maps": "",
        "alias_database": "",
        "local_recipient_maps": "",
        "default_transport": "error:no outbound mail from the test instance",
        "relay_transport": "error:no outbound mail from the test instance",
        "virtual_mailbox_domains": "static:all",
        "virtual_mailbox_base": str(mail),
        "virtual_mailbox_maps": "static:catchall/",
        "virtual_uid_maps": f"static:{pw.pw_uid}",
        "virtual_gid_maps": f"static:{pw.pw_gid}",
        "virtual_minimum_uid": "1",
        "virtual_mailbox_limit": "0",
        "message_size_limit": "52428800",
        "biff": "no",
        "smtputf8_enable": "yes",
        "maillog_file": str(root / "maillog"),
        "maillog_file_prefixes": str(root),
        "smtpd_banner": "$myhostname ESMTP digest-test",
        # Keep what the client sent: no Message-Id/Date/From added or rewritten.
        "local_header_rewrite_clients": "",
        "always_add_missing_headers": "no",
        # Deliver at once; never sit in the deferred queue during a test.
        "queue_run_delay": "1s",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "in_flow_delay": "0",
        "smtpd_error_sleep_time": "0",
    }
    if cert is not None and key is not None:
        lines |= {
            "smtpd_tls_cert_file": str(cert),
            "smtpd_tls_key_file": str(key),
            "smtpd_tls_security_level": "may",
            "smtpd_tls_loglevel": "1",
            "smtpd_tls_received_header": "yes",
        }
    else:
        lines["smtpd_tls_security_level"] = "none"
    (etc / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in lines.items()))
    (etc / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{port}"))
    # Postfix re-reads a config file (sleeping 300 ms each time) until its
    # mtime is in the past; back-date the files to skip ~2 s of waiting.
    past = time.time() - 10
    for name in ("main.cf", "master.cf"):
        os.utime(etc / name, (past, past))


def _wait_banner(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"postfix master exited with {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"postfix did not answer on {host}:{port}")
        time.sleep(0.05)






@contextmanager
def postfix_server(tls: bool = False, timeout: float = 15.0) -> Iterator[PostfixServer]:
    """Start a private Postfix on a free loopback port; stop it on exit."""
    reason = available()
    if reason:
        raise RuntimeError(reason)
    root = Path(tempfile.mkdtemp(prefix="pf-"))
    root.chmod(0o755)  # the postfix user must traverse it
    port = free_port()
    server = PostfixServer(root=root, port=port)
    cert = key = None
    if tls:
        import trustme

        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1", "localhost", "digest-test.localhost")
        cert, key = root / "cert.pem", root / "key.pem"
        leaf.private_key_and_cert_chain_pem.write_to_path(str(key))
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        key.chmod(0o600)
        server.ca_pem = ca.cert_pem.bytes()
    _write_config(root, port, cert, key)
    conf = str(root / "etc")
    t0 = time.monotonic()
    # Creates the queue sub-directories with the right owners.
    subprocess.run([POSTFIX, "-c", conf, "check"], check=True, capture_output=True, timeout=timeout)
    proc = subprocess.Popen(
        [str(DAEMON_DIR / "master"), "-c", conf, "-d"],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    server.proc = proc
    try:
        _wait_banner(server.host, port, proc, timeout)
        server.startup_seconds = time.monotonic() - t0
        yield server
    finally:
        stop_daemon(proc)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postfix() -> Iterator[PostfixServer]:
    """Plain-SMTP private Postfix (skips when unavailable)."""
    reason = available()
    if reason:
        pytest.skip(reason)
    with postfix_server() as server:
        yield server


@pytest.fixture
def postfix_tls() -> Iterator[PostfixServer]:
    """Private Postfix offering STARTTLS with a trustme certificate."""
    reason = available()
    if reason:
        pytest.skip(reason)
    pytest.importorskip("trustme")
    with postfix_server(tls=True) as server:
        yield server
