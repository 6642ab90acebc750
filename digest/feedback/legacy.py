"""Non-standard bounces (Exim, qmail, Exchange, Yahoo, ...) through Mailman's ``flufl.bounce``
(pure).

flufl finds *who* bounced and calls each failure temporary or permanent; we still classify by
the status code (``digest.feedback.status``): the text around the recipient is searched for an
enhanced code or reply, so a permanent 5.7.1 spam block stays a policy block.

flufl's ``all_failures`` re-raises any detector's exception (a message without ``From`` crashes
its Yale detector with IndexError), which would lose what the later detectors find; so we run
the detectors one by one in flufl's own order, each guarded, and silence flufl's logger (it
logs every such exception with a traceback).
"""

from __future__ import annotations

import logging
import re
from email.message import Message
from typing import Any

import flufl.bounce
from flufl.bounce import _scan as flufl_scan

from digest.feedback.report import Finding, Kind
from digest.feedback.status import classify, find_status

__all__ = ["daemon_text_findings", "legacy_findings"]

logging.getLogger("flufl.bounce").addHandler(logging.NullHandler())
logging.getLogger("flufl.bounce").propagate = False

# flufl's detectors, most specific first; the public call as a fallback if that list moves.
_DETECTORS: list[Any] = list(getattr(flufl_scan, "_DETECTORS", []))


def _failures(msg: Message) -> tuple[set[str], set[str]]:
    temporary: set[str] = set()
    permanent: set[str] = set()
    if not _DETECTORS:
        try:
            temp, perm = flufl.bounce.all_failures(msg)
        except Exception:  # a detector crashed on this message: nothing found
            return temporary, permanent
        return {_text(a) for a in temp}, {_text(a) for a in perm}
    for detector in _DETECTORS:
        try:
            temp, perm = detector().process(msg)
        except Exception:
            continue
        temporary.update(_text(a) for a in temp)
        permanent.update(_text(a) for a in perm)
        if temporary or permanent:
            break
    return temporary, permanent


def _text(address: bytes | str) -> str:
    raw = address.decode("utf-8", "replace") if isinstance(address, bytes) else str(address)
    return raw.strip().strip("<>").strip()


def _body_lines(msg: Message) -> list[str]:
    lines: list[str] = []
    for part in msg.walk():
        if part.get_content_maintype() != "text":
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            lines.extend(payload.decode("utf-8", "replace").splitlines())
    return lines


def _context(lines: list[str], recipient: str) -> str:
    """The lines that mention the recipient and the few after it: that failure's words."""
    needle = recipient.lower()
    for i, line in enumerate(lines):
        if needle and needle in line.lower():
            return " ".join(" ".join(lines[i:i + 6]).split())[:1000]
    return " ".join(" ".join(lines[:40]).split())[:1000]


def legacy_findings(msg: Message) -> list[Finding]:
    """Failures flufl's heuristics find, classified by the words around each recipient."""
    temporary, permanent = _failures(msg)
    if not temporary and not permanent:
        return []
    lines = _body_lines(msg)
    findings = []
    for recipient in sorted(temporary | permanent):
        if "@" not in recipient:
            continue
        words = _context(lines, recipient)
        status = find_status(words)
        kind = classify(status, words, permanent=recipient in permanent)
        if kind is None:
            kind = Kind.HARD if recipient in permanent else Kind.SOFT
        if recipient not in permanent and kind is Kind.HARD:
            kind = Kind.SOFT  # flufl says temporary and the words do not say otherwise
        findings.append(Finding(recipient, kind, status, words or None))
    return findings


# The last resort, for mailer-daemon text flufl has no detector for (OpenSMTPD, Yahoo's
# "Remote host said"): a line that starts with the failed address, and an SMTP reply with a
# status code on it or on the next two lines -- the layout Postfix made common.
_ADDRESS_LINE = re.compile(r"^\s*<?([^\s<>@:]+@[^\s<>:]+)>?:(.*)$")
_QUOTED_START = re.compile(r"copy of the|original message|unsent message|^received:", re.I)
_REPLY_CODE = re.compile(r"\b[45]\d\d[\s-]+[45]\.\d{1,3}\.\d{1,3}\b")


def daemon_text_findings(msg: Message) -> list[Finding]:
    """Failed addresses in a mail system's own words, up to where it quotes our message."""
    lines = []
    for line in _body_lines(msg):
        if _QUOTED_START.search(line):
            break
        lines.append(line)
    findings = []
    for i, line in enumerate(lines):
        match = _ADDRESS_LINE.match(line)
        if not match:
            continue
        words = " ".join(" ".join([match.group(2), *lines[i + 1:i + 3]]).split())[:1000]
        reply = _REPLY_CODE.search(words)
        if reply is None:
            continue
        kind = classify(find_status(reply.group(0)), words)
        if kind is not None:
            findings.append(Finding(match.group(1), kind, find_status(reply.group(0)), words))
    return findings
