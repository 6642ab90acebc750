"""What a report said, as plain data (pure): a ``Report`` of ``Finding`` s, one per recipient.

Every way in (a mailed DSN, an ARF complaint, a provider webhook) ends as a ``Report``; the
policy (``digest.feedback.policy``) decides what it changes.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

__all__ = ["Finding", "Kind", "Report", "Source", "content_key"]


class Kind(enum.StrEnum):
    """What a report means for one recipient (the ``kind`` of ``digest bounces process``)."""

    HARD = "hard"  # the address does not exist (5.1.x, 5.0.0 for the address): suppress
    SOFT = "soft"  # mailbox full, 4.x.x: counted
    POLICY = "policy"  # a 5.7.x block: our reputation or content, not the address (shown soft)
    COMPLAINT = "complaint"  # "this is spam": suppress, record a consent event
    AUTO_REPLY = "auto-reply"  # out of office, RFC 3834: changes nothing
    UNRECOGNIZED = "unrecognized"  # readable mail we could not read a failure from

    @property
    def shown(self) -> str:
        """The kind scripts see: a policy block is a soft bounce that is not counted."""
        return Kind.SOFT.value if self is Kind.POLICY else self.value


class Source(enum.StrEnum):
    """Where the evidence came from (stored with every bounce event)."""

    DSN = "dsn"
    ARF = "arf"
    FLUFL = "flufl"
    TEXT = "text"  # a mail system's own words, read by digest (legacy.daemon_text_findings)
    AUTO_REPLY = "auto-reply"
    SES = "ses"
    POSTMARK = "postmark"
    MAILGUN = "mailgun"
    SENDGRID = "sendgrid"
    NONE = "none"


@dataclass(frozen=True)
class Finding:
    """One recipient's failure (or complaint), with its evidence."""

    recipient: str  # the address we mailed, as the report gives it ("" when redacted)
    kind: Kind
    status: str | None = None  # enhanced status code, e.g. "5.1.1"
    diagnostic: str | None = None  # the remote server's words, or the feedback type


@dataclass(frozen=True)
class Report:
    """One report: its kind, its findings, and what identifies our delivery in it."""

    kind: Kind
    source: Source
    key: str  # dedupe key: the report's Message-ID, a provider's event id, or a content hash
    findings: tuple[Finding, ...] = ()
    # Where the report points back at our delivery: the envelope sender it was addressed to
    # (bounces+TOKEN@...) and the Message-ID of our message it quotes.
    return_paths: tuple[str, ...] = ()
    original_message_ids: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())  # why unrecognized, what was skipped


def content_key(raw: bytes) -> str:
    """A dedupe key for a report without a Message-ID: a hash of its bytes."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:48]
