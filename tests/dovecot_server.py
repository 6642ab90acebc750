"""Run a private, throw-away Dovecot IMAP server for tests.

Everything lives in a temporary directory: the generated ``dovecot.conf``,
``base_dir`` (sockets, pid), ``state_dir``, the log, a ``passwd-file`` with
one user and that user's Maildir.  Dovecot runs in the foreground
(``dovecot -c CONF -F``) as a child of the test process, listening on
``127.0.0.1`` only: ``imaps`` (implicit TLS) on one free port and ``imap``
(STARTTLS, plaintext auth refused before TLS) on another, with a
certificate issued by a ``trustme`` CA.  The system Dovecot
(``/etc/dovecot``, ``/run/dovecot``, systemd) is neither used nor touched.

Works as root and as an ordinary user.  As root, imap-login refuses to run
as root, so login/internal processes use Debian's ``dovenull``/``dovecot``
accounts, and mail processes refuse uid 0, so the Maildir belongs to
``nobody`` (``deliver()`` chowns what it writes).  As a normal user
everything runs as that user.

Usage::

    with dovecot_server() as dc:
        dc.deliver(raw_message)
        with dc.imap() as imap:          # logged in over implicit TLS
            imap.select("INBOX")
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.daemons import stop_daemon

DOVECOT = "/usr/sbin/dovecot"
IMAP_BINARY = "/usr/lib/dovecot/imap"

CONF = """\
instance_name = {instance}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = 0
first_valid_gid = 0
mail_location = maildir:~/Maildir
mail_privileged_group =
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%n
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    user = {internal_user}
  }}
  unix_listener stats-writer {{
    user = {internal_user}
  }}
}}
"""


def available() -> str | None:
    """Return None if a private Dovecot can be started, else why not."""
    if not os.path.exists(DOVECOT):
        return "dovecot not installed: apt-get install dovecot-imapd"
    if not os.path.exists(IMAP_BINARY):
        return "dovecot imap not installed: apt-get install dovecot-imapd"
    try:
        import trustme  # noqa: F401
    except ImportError:
        return "trustme not installed: pip install trustme"
    return None


def _service_users() -> dict[str, str]:
    """Users for Dovecot's internal and login processes.

    Non-root: everything runs as the current user.  Root: imap-login refuses
    to run as root ("This process must not be run as root"), so use the
    unprivileged accounts the Debian package creates (dovecot / dovenull),
    falling back to nobody.  The mail user is nobody (see _mail_owner).
    """
    me = pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() != 0:
        group = grp.getgrgid(os.getegid()).gr_name
        return {"internal_user": me, "internal_group": group, "login_user": me}

    def pick(*names: str) -> pwd.struct_passwd:
        for name in names:
            try:
                return pwd.getpwnam(name)
            except KeyError:
                continue
        raise RuntimeError(f"none of the users {names} exist")

    internal = pick("dovecot", "nobody")
    login = pick("dovenull", "nobody")
    return {
        "internal_user": internal.pw_name,
        "internal_group": grp.getgrgid(internal.pw_gid).gr_name,
        "login_user": login.pw_name,
    }


def _mail_owner() -> tuple[int, int]:
    """uid/gid owning the Maildir.  Dovecot refuses uid 0 for mail access
    ("userdb returned 0 as uid"), so root uses nobody:nogroup."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DovecotServer:
    root: Path
    imap_port: int
    imaps_port: int
    ca_pem: bytes
    user: str = "bounces"
    password: str = "secret"
    host: str = "127.0.0.1"
    mail_uid: int = field(default_factory=os.geteuid)
    mail_gid: int = field(default_factory=os.getegid)
    startup_seconds: float = 0.0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def maildir(self) -> Path:
        return self.root / "home" / self.user / "Maildir"

    @property
    def log_file(self) -> Path:
        return self.root / "dovecot.log"

    def logs(self) -> str:
        """Tail of Dovecot's stderr and log file (for error messages)."""
        out = []
        for p in (self.root / "stderr.log", self.log_file):
            if p.exists():
                out.append(p.read_text(errors="replace")[-3000:])
        return "\n".join(out)

    def client_ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem.decode())

    def deliver(self, message: bytes, folder: str = "INBOX") -> Path:
        """Drop ``message`` into the user's Maildir (``new/``) directly."""
        base = self.maildir
        if folder != "INBOX":  # Maildir++ layout: .Sub.Folder
            base = base / ("." + folder.replace("/", "."))
        for sub in ("", "tmp", "new", "cur"):
            if not (base / sub).is_dir():
                (base / sub).mkdir(parents=True)
                os.chown(base / sub, self.mail_uid, self.mail_gid)
        name = f"{time.time():.6f}.{uuid.uuid4().hex}.digest-test"
        tmp = base / "tmp" / name
        tmp.write_bytes(message.replace(b"\r\n", b"\n"))
        os.chown(tmp, self.mail_uid, self.mail_gid)
        final = base / "new" / name
        tmp.rename(final)
        return final

    @contextmanager
    def imap(self, starttls: bool = False) -> Iterator[imaplib.IMAP4]:
        """Logged-in IMAP client over implicit TLS (or STARTTLS)."""
        ctx = self.client_ssl_context()
        client: imaplib.IMAP4
        if starttls:
            client = imaplib.IMAP4(self.host, self.imap_port, timeout=10)
            client.starttls(ssl_context=ctx)
        else:
            client = imaplib.IMAP4_SSL(self.host, self.imaps_port, ssl_context=ctx, timeout=10)
        try:
            client.login(self.user, self.password)
            yield client
        finally:
            with suppress(imaplib.IMAP4.error, OSError):
                client.logout()

    def folders(self) -> list[str]:
        with self.imap() as c:
            typ, data = c.list()
        assert typ == "OK", data
        names = []
        for line in data:
            raw = line.decode() if isinstance(line, bytes) else str(line)
            # (\HasNoChildren) "/" "Name"  or  ... "/" Name
            name = raw.rsplit(' "/" ', 1)[-1].strip()
            names.append(name[1:-1] if name.startswith('"') else name)
        return sorted(names)

    def messages(self, folder: str = "INBOX") -> list[bytes]:
        """Full bytes (RFC822) of every message in ``folder``, in UID order."""
        with self.imap() as c:
            typ, _ = c.select(_quote(folder), readonly=True)
            assert typ == "OK", folder
            typ, data = c.uid("SEARCH", "ALL")
            uids = data[0].split() if data and data[0] else []
            out = []
            for uid in uids:
                typ, fetched = c.uid("FETCH", uid, "(BODY.PEEK[])")
                for item in fetched:
                    if isinstance(item, tuple):
                        out.append(item[1])
        return out


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _wait_ready(server: DovecotServer, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    ctx = server.client_ssl_context()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"dovecot exited with {proc.returncode}:\n{server.logs()}")
        try:
            with (
                socket.create_connection((server.host, server.imaps_port), timeout=1) as raw,
                ctx.wrap_socket(raw, server_hostname=server.host) as s,
            ):
                if s.recv(512).startswith(b"* OK"):
                    return
        except (OSError, ssl.SSLError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"dovecot did not answer on imaps port:\n{server.logs()}")
        time.sleep(0.05)




@contextmanager
def dovecot_server(
    user: str = "bounces", password: str = "secret", timeout: float = 15.0
) -> Iterator[DovecotServer]:
    """Start a private Dovecot (imaps + imap/STARTTLS); stop it on exit."""
    reason = available()
    if reason:
        raise RuntimeError(reason)
    import trustme

    root = Path(tempfile.mkdtemp(prefix="dc-"))
    root.chmod(0o755)
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    leaf.cert_chain_pems[0].write_to_path(str(root / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(root / "key.pem"))
    (root / "key.pem").chmod(0o600)
    for sub in ("run", "state", "home"):
        (root / sub).mkdir()
    uid, gid = _mail_owner()
    for sub in (f"home/{user}", f"home/{user}/Maildir"):
        (root / sub).mkdir()
        os.chown(root / sub, uid, gid)
    (root / "passwd").write_text(f"{user}:{{PLAIN}}{password}::::::\n")
    server = DovecotServer(
        root=root,
        imap_port=free_port(),
        imaps_port=free_port(),
        ca_pem=ca.cert_pem.bytes(),
        user=user,
        password=password,
        mail_uid=uid,
        mail_gid=gid,
    )
    conf = root / "dovecot.conf"
    conf.write_text(
        CONF.format(
            instance=f"digest-test-{root.name}",
            root=root,
            **_service_users(),
            uid=server.mail_uid,
            gid=server.mail_gid,
            imap_port=server.imap_port,
            imaps_port=server.imaps_port,
        )
    )
    t0 = time.monotonic()
    with open(root / "stderr.log", "wb") as err:
        proc = subprocess.Popen(
            [DOVECOT, "-c", str(conf), "-F"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    server.proc = proc
    try:
        _wait_ready(server, proc, timeout)
        server.startup_seconds = time.monotonic() - t0
        yield server
    finally:
        stop_daemon(proc, whole_group=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    """Private Dovecot with user ``bounces``/``secret`` (skips if unavailable)."""
    reason = available()
    if reason:
        pytest.skip(reason)
    with dovecot_server() as server:
        yield server
