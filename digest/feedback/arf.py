"""Complaints through a feedback loop (ARF, RFC 5965, pure): ``multipart/report;
report-type=feedback-report`` -> one complaint ``Finding`` per reported recipient.

Providers redact the complainer's address (Hotmail, Yahoo, AOL), so the recipient comes from
``Original-Rcpt-To`` if given, else the quoted message's ``To``; what really identifies the
delivery is in the quoted message -- our Message-ID and the VERP return path
(``Original-Mail-From`` or the quoted ``Return-Path``), which ``policy`` checks first.
``not-spam`` (the opposite of a complaint) and ``auth-failure`` (a DMARC/DKIM failure report,
RFC 6591) are not complaints.
"""

from __future__ import annotations

from email.message import Message

from digest.feedback.dsn import address_of, field_blocks, quoted_headers
from digest.feedback.report import Finding, Kind

__all__ = ["arf_findings", "arf_return_paths"]

_NOT_COMPLAINTS = frozenset({"not-spam", "auth-failure"})


def _feedback_fields(msg: Message) -> Message | None:
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            blocks = field_blocks(part)
            merged = Message()
            for block in blocks:
                for name, value in block.items():
                    merged[name] = value
            return merged
    return None


def arf_findings(msg: Message) -> list[Finding]:
    """The complaints of an ARF report (empty when it is not one)."""
    fields = _feedback_fields(msg)
    if fields is None:
        return []
    kind = str(fields.get("Feedback-Type", "abuse")).strip().lower()
    if kind in _NOT_COMPLAINTS:
        return []
    recipients = [address_of(v) for v in fields.get_all("Original-Rcpt-To") or []]
    if not any(recipients):
        original = quoted_headers(msg)
        to = str(original.get("To", "")) if original is not None else ""
        recipients = [address_of(a) for a in to.split(",")] if to else [""]
    detail = f"feedback-type={kind}"
    agent = fields.get("User-Agent")
    if agent:
        detail += f"; user-agent={' '.join(str(agent).split())[:200]}"
    seen: list[str] = []
    for recipient in recipients:
        if recipient not in seen:
            seen.append(recipient)
    return [Finding(r, Kind.COMPLAINT, None, detail) for r in seen]


def arf_return_paths(msg: Message) -> list[str]:
    """The envelope senders the report names (``Original-Mail-From``)."""
    fields = _feedback_fields(msg)
    if fields is None:
        return []
    return [a for a in (address_of(v) for v in fields.get_all("Original-Mail-From") or []) if a]
