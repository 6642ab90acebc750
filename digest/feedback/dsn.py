"""Delivery status notifications (RFC 3464, pure): ``multipart/report;
report-type=delivery-status`` -> one ``Finding`` per failed or delayed recipient.

Per recipient: ``Action`` (failed, delayed; delivered/relayed/expanded are not failures),
``Status`` (the enhanced code), ``Diagnostic-Code`` (the remote server's reply), and the
recipient from ``Original-Recipient`` (the address *we* sent to, before any forwarding), else
``X-Actual-Recipient``/``Final-Recipient``. Also what points back at our delivery: the quoted
original message's Message-ID and Return-Path (``text/rfc822-headers`` or ``message/rfc822``).
"""

from __future__ import annotations

from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses

from digest.feedback.report import Finding, Kind
from digest.feedback.status import classify, find_status

__all__ = ["address_of", "dsn_findings", "dsn_text_findings", "is_report", "quoted_headers"]

_NOT_FAILED = frozenset({"delivered", "relayed", "expanded"})


def is_report(msg: Message, report_type: str) -> bool:
    """Is ``msg`` (or a part of it, for a forwarded report) a multipart/report of that type?"""
    for part in msg.walk():
        if (part.get_content_type() == "multipart/report"
                and str(part.get_param("report-type") or "").lower() == report_type):
            return True
    return False


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload.decode("utf-8", "replace")
    raw = part.get_payload()
    return raw if isinstance(raw, str) else ""


def field_blocks(part: Message) -> list[Message]:
    """The header blocks of a delivery-status or feedback-report part.

    The parser gives message/delivery-status as a list of blocks; a report sent as text/plain
    (some MTAs) is split at blank lines and parsed here.
    """
    payload = part.get_payload()
    if isinstance(payload, list) and all(isinstance(p, Message) for p in payload):
        return list(payload)
    text = _text(part).replace("\r\n", "\n")
    return [HeaderParser().parsestr(block.strip() + "\n") for block in text.split("\n\n")
            if block.strip()]


def address_of(value: str | None) -> str:
    """``rfc822; User@Example.org`` -> ``User@Example.org`` (type prefix, brackets removed)."""
    if not value:
        return ""
    raw = str(value)
    if ";" in raw:
        raw = raw.split(";", 1)[1]
    found = [a for _name, a in getaddresses([raw.strip()]) if "@" in a]
    return found[0].strip() if found else raw.strip().strip("<>").strip()


def quoted_headers(msg: Message) -> Message | None:
    """The headers of the original message a report quotes, if it quotes one."""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
        elif kind in ("text/rfc822-headers", "text/global-headers"):
            return HeaderParser().parsestr(_text(part).replace("\r\n", "\n"))
    return None


def _one_line(value: str | None) -> str | None:
    return " ".join(str(value).split())[:1000] if value else None


def dsn_findings(msg: Message) -> list[Finding]:
    """The failed and delayed recipients of a DSN (empty if it reports only deliveries)."""
    findings: list[Finding] = []
    for part in msg.walk():
        if part.get_content_type() in ("message/delivery-status",
                                       "message/global-delivery-status"):
            findings += _block_findings(field_blocks(part))
    return findings


def dsn_text_findings(msg: Message) -> list[Finding]:
    """Delivery-status fields found in the text of a broken report (a MIME boundary that does
    not match, a DSN pasted into text/plain): the same fields, read from any paragraph that has
    a ``Final-Recipient``."""
    blocks: list[Message] = []
    for part in msg.walk():
        if part.get_content_maintype() not in ("text", "multipart", "message"):
            continue
        text = _text(part) if not part.is_multipart() else ""
        for paragraph in text.replace("\r\n", "\n").split("\n\n"):
            lower = paragraph.lower()
            if "final-recipient:" in lower:
                starts = [i for k in ("original-recipient:", "final-recipient:")
                          if (i := lower.find(k)) >= 0]
                blocks.append(HeaderParser().parsestr(paragraph[min(starts):].strip() + "\n"))
    return _block_findings(blocks)


def _block_findings(blocks: list[Message]) -> list[Finding]:
    findings: list[Finding] = []
    for block in blocks:
        recipient = address_of(block.get("Original-Recipient")
                               or block.get("X-Actual-Recipient")
                               or block.get("Final-Recipient"))
        action = str(block.get("Action", "")).strip().lower()
        if not recipient or action in _NOT_FAILED:
            continue
        diagnostic = _one_line(block.get("Diagnostic-Code"))
        status = find_status(str(block.get("Status", "")), diagnostic)
        kind = classify(status, diagnostic, permanent=action != "delayed")
        if action == "delayed" and kind is not None:
            kind = Kind.SOFT  # a delay warning is never final
        if kind is not None:
            findings.append(Finding(recipient, kind, status, diagnostic))
    return findings
