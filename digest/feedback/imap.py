"""``digest bounces fetch``: poll the bounce mailbox over IMAP (implicit TLS or STARTTLS,
never cleartext), process every message in the folder and move it to the processed or
unrecognized folder, creating them when missing.

Rerunnable: a message is moved only after its report is committed, so a crash in between
leaves it in the folder, and processing it again is answered ``duplicate`` (nothing changes
twice). Bytes that are not a message go to the unrecognized folder too, never lost.
"""

from __future__ import annotations

import imaplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from digest.config.errors import ConfigError, DigestError
from digest.config.feedback_settings import FeedbackSettings, ImapSecurity
from digest.config.settings import Settings
from digest.feedback.parse import NotAMessage
from digest.feedback.processor import Processed, process_message
from digest.feedback.report import Kind

__all__ = ["FetchResult", "fetch_mailbox"]


class MailboxError(DigestError, OSError):
    """The bounce mailbox could not be reached or refused us."""

    exit_code = 1


@dataclass
class FetchResult:
    processed: int = 0
    unrecognized: int = 0
    lines: list[str] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.processed + self.unrecognized} message(s): {self.processed} processed, "
                f"{self.unrecognized} unrecognized")

    def as_dict(self) -> dict[str, Any]:
        return {"processed": self.processed, "unrecognized": self.unrecognized,
                "messages": self.results}


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _logged_in(f: FeedbackSettings, host: str, user: str, password: str,
               context: ssl.SSLContext) -> imaplib.IMAP4:
    client: imaplib.IMAP4
    if f.imap_security is ImapSecurity.TLS:
        client = imaplib.IMAP4_SSL(host, f.imap_port, ssl_context=context,
                                   timeout=f.imap_timeout)
    else:
        client = imaplib.IMAP4(host, f.imap_port, timeout=f.imap_timeout)
    try:
        if f.imap_security is not ImapSecurity.TLS:
            client.starttls(ssl_context=context)
        client.login(user, password)
    except BaseException:
        # A refused login or STARTTLS leaves the connection open until the client object is
        # collected, and the server keeps the session (and its processes) meanwhile: close it.
        with suppress(OSError):
            client.shutdown()
        raise
    return client


@contextmanager
def _connect(f: FeedbackSettings) -> Iterator[imaplib.IMAP4]:
    if not f.imap_host or not f.imap_user or not f.imap_password:
        raise ConfigError("The bounce mailbox is not configured.",
                          "set DIGEST_BOUNCE_IMAP_HOST, DIGEST_BOUNCE_IMAP_USER and "
                          "DIGEST_BOUNCE_IMAP_PASSWORD (see .env.example)")
    context = ssl.create_default_context()
    if f.imap_ca_file is not None:
        context.load_verify_locations(cafile=str(f.imap_ca_file))
    where = f"{f.imap_host}:{f.imap_port}"
    try:
        client = _logged_in(f, f.imap_host, f.imap_user, f.imap_password, context)
    except ssl.SSLError as exc:
        raise MailboxError(f"TLS with the bounce mailbox {where} failed: {exc.reason}.",
                           "check DIGEST_BOUNCE_IMAP_SECURITY and the server's certificate "
                           "(DIGEST_BOUNCE_IMAP_CA_FILE for a private CA)") from None
    except imaplib.IMAP4.error as exc:
        raise MailboxError(f"The bounce mailbox {where} refused the login: {exc}.",
                           "check DIGEST_BOUNCE_IMAP_USER and DIGEST_BOUNCE_IMAP_PASSWORD"
                           ) from None
    except OSError as exc:
        raise MailboxError(f"Cannot reach the bounce mailbox {where}: {exc}.",
                           "check DIGEST_BOUNCE_IMAP_HOST and DIGEST_BOUNCE_IMAP_PORT") from None
    try:
        yield client
    finally:
        with suppress(imaplib.IMAP4.error, OSError):
            client.logout()


def _ensure_folder(client: imaplib.IMAP4, name: str) -> None:
    typ, data = client.list('""', _quote(name))
    if typ == "OK" and any(d for d in data if d):
        return
    typ, data = client.create(_quote(name))
    if typ != "OK":
        raise MailboxError(f"Cannot create the folder {name!r} in the bounce mailbox: {data}.",
                           "create it by hand or choose another name in .env")
    with suppress(imaplib.IMAP4.error):
        client.subscribe(_quote(name))


def _move(client: imaplib.IMAP4, uid: bytes, folder: str) -> None:
    if "MOVE" in client.capabilities:
        typ, data = client.uid("MOVE", uid.decode(), _quote(folder))
    else:  # RFC 6851 missing: copy, flag, expunge
        typ, data = client.uid("COPY", uid.decode(), _quote(folder))
        if typ == "OK":
            client.uid("STORE", uid.decode(), "+FLAGS.SILENT", r"(\Deleted)")
            client.expunge()
    if typ != "OK":
        raise MailboxError(f"Cannot move message {uid.decode()} to {folder!r}: {data}.",
                           "check the mailbox's folders and rights")


def _fetch(client: imaplib.IMAP4, uid: bytes) -> bytes | None:
    typ, data = client.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
    if typ != "OK":
        return None
    for item in data:
        if isinstance(item, tuple) and isinstance(item[1], bytes):
            return item[1]
    return None


def fetch_mailbox(sessions: sessionmaker[Session], settings: Settings) -> FetchResult:
    """Process and file away every message in the bounce folder."""
    f = settings.feedback
    result = FetchResult()
    with _connect(f) as client:
        for folder in (f.imap_processed_folder, f.imap_unrecognized_folder):
            _ensure_folder(client, folder)
        typ, data = client.select(_quote(f.imap_folder))
        if typ != "OK":
            raise MailboxError(f"The bounce mailbox has no folder {f.imap_folder!r}.",
                               "check DIGEST_BOUNCE_IMAP_FOLDER")
        typ, data = client.uid("SEARCH", "UNDELETED")
        uids = data[0].split() if typ == "OK" and data and data[0] else []
        for uid in uids:
            raw = _fetch(client, uid)
            done: Processed | None = None
            if raw is not None:
                with suppress(NotAMessage):
                    done = process_message(sessions, settings, raw)
            recognized = done is not None and done.report.kind is not Kind.UNRECOGNIZED
            _move(client, uid, f.imap_processed_folder if recognized
                  else f.imap_unrecognized_folder)
            if recognized:
                result.processed += 1
            else:
                result.unrecognized += 1
            line = done.summary() if done is not None else "not a message"
            result.lines.append(f"{uid.decode()}: {line}")
            result.results.append({"uid": int(uid), **(done.as_dict() if done else
                                                         {"kind": "unrecognized"})})
    return result
