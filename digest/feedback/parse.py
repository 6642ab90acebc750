"""One mailed report -> a ``Report`` (pure): what ``digest bounces process`` and ``fetch`` read.

The order matters, because bounces and auto-replies carry each other's marks:

1. ARF (``feedback-report``) -> complaint;
2. DSN (``delivery-status``) -> hard / soft / policy per recipient;
3. an auto-reply by the headers no bounce carries (``X-Autoreply``, ``Precedence:
   auto_reply``) -> auto-reply, before flufl's heuristics can misread an out-of-office;
4. ``flufl.bounce``'s detectors for non-standard bounces; then DSN fields pasted as text and,
   from a mail system only, "address: 550 5.1.1 ..." lines (``legacy.daemon_text_findings``);
5. any other auto-reply (``Auto-Submitted: auto-replied``, "Out of office" subjects);
6. otherwise unrecognized (readable mail; it changes nothing).

Bytes that are not a message at all (no header block) raise ``NotAMessage`` (exit 2).
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from email.message import Message

from digest.config.errors import InvalidInput
from digest.feedback.arf import arf_findings, arf_return_paths
from digest.feedback.autoreply import is_auto_reply, is_mailer_daemon
from digest.feedback.dsn import (
    address_of,
    dsn_findings,
    dsn_text_findings,
    is_report,
    quoted_headers,
)
from digest.feedback.legacy import daemon_text_findings, legacy_findings
from digest.feedback.providers import ses_report
from digest.feedback.report import Finding, Kind, Report, Source, content_key

__all__ = ["NotAMessage", "parse_message", "read_message"]

# Headers every real message (and every report) has at least one of.
_ENVELOPE_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "Received", "Return-Path",
                     "Delivered-To", "Content-Type", "MIME-Version")
_MESSAGE_ID = re.compile(r"<[^<>\s]+@[^<>\s]+>")
_HEADER_LINE = re.compile(rb"^(?:From |[!-9;-~]+:)")


class NotAMessage(InvalidInput):
    """The input is not an email message at all."""


def read_message(raw: bytes) -> Message:
    """Parse ``raw``; ``NotAMessage`` when it has no header block."""
    if b"\n" not in raw and b"\r" in raw:  # old Mac line endings (CR only)
        raw = raw.replace(b"\r", b"\n")
    stripped = raw.lstrip(b"\r\n\t ")
    if not stripped or b"\x00" in raw[:4096] or not _HEADER_LINE.match(stripped):
        raise NotAMessage("The input is not an email message (no header lines).",
                          "pass one message in RFC 5322 form, as the MTA delivers it")
    msg = email.message_from_bytes(stripped, policy=email.policy.compat32)
    if not any(msg.get(name) for name in _ENVELOPE_HEADERS):
        raise NotAMessage("The input is not an email message (no From, To, Subject, Date, "
                          "Message-ID or Received header).",
                          "pass one message in RFC 5322 form, as the MTA delivers it")
    return msg


def _key(msg: Message, raw: bytes) -> str:
    found = _MESSAGE_ID.search(str(msg.get("Message-ID", "")))
    return found.group(0)[:200] if found else content_key(raw)


def _pointers(msg: Message) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Envelope addresses (VERP) and our Message-IDs the report points back at."""
    paths = [address_of(str(v)) for v in msg.get_all("To", []) + msg.get_all("Delivered-To", [])
             + msg.get_all("X-Original-To", [])]
    paths += arf_return_paths(msg)
    ids: list[str] = []
    original = quoted_headers(msg)
    if original is not None:
        paths.append(address_of(str(original.get("Return-Path", ""))))
        ids += _MESSAGE_ID.findall(str(original.get("Message-ID", "")))
    return (tuple(dict.fromkeys(p for p in paths if p)), tuple(dict.fromkeys(ids)))


def _overall(findings: list[Finding]) -> Kind:
    kinds = {f.kind for f in findings}
    for kind in (Kind.COMPLAINT, Kind.HARD, Kind.SOFT, Kind.POLICY):
        if kind in kinds:
            return kind
    return Kind.UNRECOGNIZED


def parse_message(raw: bytes, envelope_to: str | None = None) -> Report:
    """Read one report (see the module docstring for the order of the checks).

    ``envelope_to`` is the address the MTA delivered it to (Postfix's ``${original_recipient}``):
    the VERP address, when the report's headers do not show it.
    """
    # compat32: flufl's detectors expect the classic Message API, and it never raises on the
    # odd headers real bounces carry.
    msg = read_message(raw)
    key = _key(msg, raw)
    paths, ids = _pointers(msg)
    if envelope_to:
        paths = (envelope_to.strip().strip("<>"), *paths)

    def report(kind: Kind, source: Source, findings: list[Finding] = (),  # type: ignore[assignment]
               note: str = "") -> Report:
        return Report(kind, source, key, tuple(findings), paths, ids, (note,) if note else ())

    if is_report(msg, "feedback-report"):
        complaints = arf_findings(msg)
        if complaints:
            return report(Kind.COMPLAINT, Source.ARF, complaints)
        return report(Kind.UNRECOGNIZED, Source.ARF, note="a feedback report that is no complaint")
    if is_report(msg, "delivery-status"):
        findings = dsn_findings(msg)
        if findings:
            return report(_overall(findings), Source.DSN, findings)
    ses = _ses_notification(msg, key)
    if ses is not None:
        return ses
    daemon = is_mailer_daemon(msg)
    if is_auto_reply(msg, strong=True) and not daemon:
        return report(Kind.AUTO_REPLY, Source.AUTO_REPLY)
    legacy = legacy_findings(msg)
    if legacy:
        return report(_overall(legacy), Source.FLUFL, legacy)
    pasted = dsn_text_findings(msg)
    if pasted:
        return report(_overall(pasted), Source.DSN, pasted)
    said = daemon_text_findings(msg) if daemon else []
    if said:
        return report(_overall(said), Source.TEXT, said)
    if not daemon and is_auto_reply(msg):
        return report(Kind.AUTO_REPLY, Source.AUTO_REPLY)
    if is_report(msg, "delivery-status"):
        return report(Kind.UNRECOGNIZED, Source.DSN, note="a DSN that reports no failure")
    return report(Kind.UNRECOGNIZED, Source.NONE, note="no failure or complaint found")


def _ses_notification(msg: Message, key: str) -> Report | None:
    """An SES notification delivered by email (an SNS email subscription): JSON in the body."""
    if msg.is_multipart():
        return None
    payload = msg.get_payload(decode=True)
    if not isinstance(payload, bytes) or b'"notificationType"' not in payload:
        return None
    text = payload.decode("utf-8", "replace")
    text = text[text.find("{"):text.rfind("}") + 1]
    try:
        note = json.loads(text)
    except ValueError:
        try:  # an SNS email subscription folds long lines as "!" + newline + space
            note = json.loads(re.sub(r"!\r?\n ", "", text))
        except ValueError:
            return None
    if not isinstance(note, dict) or not (note.get("notificationType") or note.get("eventType")):
        return None
    return ses_report(note, key)
