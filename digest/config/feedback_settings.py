"""The bounce and complaint settings (``DIGEST_RETURN_PATH``, ``DIGEST_SOFT_BOUNCE_*``,
``DIGEST_BOUNCE_IMAP_*``, ``DIGEST_WEBHOOK_*``), read by ``load_settings`` into
``Settings.feedback``.

Kept apart from ``settings`` so the feedback loop's dozen keys sit together; ``load_settings``
hands over its reader of the merged environment, so this module never reads the environment
itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Protocol

from digest.config.errors import ConfigError

__all__ = ["FeedbackSettings", "ImapSecurity", "read_feedback"]

# The VERP local part is "<local>+<32-character token>"; RFC 5321 allows 64 octets.
VERP_TOKEN_LENGTH = 32
MAX_LOCAL_PART = 64


class ImapSecurity(enum.StrEnum):
    """How the bounce mailbox connection is protected (there is no cleartext choice)."""

    TLS = "tls"
    STARTTLS = "starttls"


_IMAP_PORTS = {ImapSecurity.TLS: 993, ImapSecurity.STARTTLS: 143}


@dataclass(frozen=True)
class FeedbackSettings:
    """Where bounces come back and what they do."""

    return_path: str | None = None  # bounces@news.example.org -> bounces+TOKEN@news.example.org
    soft_bounce_limit: int = 3
    soft_bounce_days: int = 30
    imap_host: str | None = None
    imap_port: int = 993
    imap_security: ImapSecurity = ImapSecurity.TLS
    imap_user: str | None = None
    imap_password: str | None = field(default=None, repr=False)
    imap_folder: str = "INBOX"
    imap_processed_folder: str = "Processed"
    imap_unrecognized_folder: str = "Unrecognized"
    imap_ca_file: Path | None = None
    imap_timeout: float = 30.0
    postmark_token: str | None = field(default=None, repr=False)
    mailgun_signing_key: str | None = field(default=None, repr=False)
    sendgrid_public_key: str | None = None
    ses_topic_arns: tuple[str, ...] = ()


class _Reader(Protocol):
    def text(self, key: str, default: str | None) -> str | None: ...

    def number(self, key: str, default: int, minimum: int = 0) -> int: ...

    def real(self, key: str, default: float) -> float: ...

    def path(self, key: str, must_exist: bool = True) -> Path | None: ...


def _return_path(raw: str | None) -> str | None:
    if raw is None:
        return None
    _name, addr = parseaddr(raw)
    local, _, domain = addr.rpartition("@")
    if not local or not domain or "+" in local or not addr.isascii():
        raise ConfigError(f"DIGEST_RETURN_PATH={raw!r} is invalid: expected a plain ASCII "
                          "address without '+', like bounces@news.example.org",
                          "set it to a mailbox whose domain delivers to `digest bounces "
                          "process` (or that `digest bounces fetch` polls)")
    if len(local) + 1 + VERP_TOKEN_LENGTH > MAX_LOCAL_PART:
        raise ConfigError(f"DIGEST_RETURN_PATH={raw!r}: its local part is too long for VERP",
                          f"use a local part of at most {MAX_LOCAL_PART - 1 - VERP_TOKEN_LENGTH}"
                          " characters, such as bounces@")
    return addr


def read_feedback(r: _Reader) -> FeedbackSettings:
    """Read and check the feedback keys from ``load_settings``'s reader."""
    raw_security = (r.text("DIGEST_BOUNCE_IMAP_SECURITY", "tls") or "tls").lower()
    try:
        security = ImapSecurity(raw_security)
    except ValueError:
        raise ConfigError(f"DIGEST_BOUNCE_IMAP_SECURITY={raw_security!r} is invalid: expected "
                          "tls or starttls", "use tls (port 993); the mailbox password never "
                          "travels in cleartext") from None
    arns = r.text("DIGEST_WEBHOOK_SES_TOPIC_ARNS", "") or ""
    return FeedbackSettings(
        return_path=_return_path(r.text("DIGEST_RETURN_PATH", None)),
        soft_bounce_limit=r.number("DIGEST_SOFT_BOUNCE_LIMIT", 3, minimum=1),
        soft_bounce_days=r.number("DIGEST_SOFT_BOUNCE_DAYS", 30, minimum=1),
        imap_host=r.text("DIGEST_BOUNCE_IMAP_HOST", None),
        imap_port=r.number("DIGEST_BOUNCE_IMAP_PORT", _IMAP_PORTS[security], minimum=1),
        imap_security=security,
        imap_user=r.text("DIGEST_BOUNCE_IMAP_USER", None),
        imap_password=r.text("DIGEST_BOUNCE_IMAP_PASSWORD", None),
        imap_folder=r.text("DIGEST_BOUNCE_IMAP_FOLDER", "INBOX") or "INBOX",
        imap_processed_folder=r.text("DIGEST_BOUNCE_IMAP_PROCESSED_FOLDER", "Processed")
        or "Processed",
        imap_unrecognized_folder=r.text("DIGEST_BOUNCE_IMAP_UNRECOGNIZED_FOLDER", "Unrecognized")
        or "Unrecognized",
        imap_ca_file=r.path("DIGEST_BOUNCE_IMAP_CA_FILE"),
        imap_timeout=r.real("DIGEST_BOUNCE_IMAP_TIMEOUT", 30.0),
        postmark_token=r.text("DIGEST_WEBHOOK_POSTMARK_TOKEN", None),
        mailgun_signing_key=r.text("DIGEST_WEBHOOK_MAILGUN_SIGNING_KEY", None),
        sendgrid_public_key=r.text("DIGEST_WEBHOOK_SENDGRID_PUBLIC_KEY", None),
        ses_topic_arns=tuple(a.strip() for a in arns.split(",") if a.strip()),
    )
