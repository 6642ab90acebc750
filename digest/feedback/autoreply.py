"""Auto-replies (RFC 3834, pure): out-of-office and vacation answers change nothing.

Recognised by the headers the standard and common software set (``Auto-Submitted:
auto-replied``, ``X-Autoreply``, ``X-Autorespond``, ``Precedence: auto_reply``,
``X-Auto-Response-Suppress`` on Exchange's own answers) or by a subject that says so. Bounces
also carry ``Auto-Submitted``, so the parser asks about DSNs and bounces first; ``strong`` is
the subset that no bounce carries, which may be asked first.
"""

from __future__ import annotations

import re
from email.message import Message

__all__ = ["is_auto_reply", "is_mailer_daemon"]

_SUBJECT = re.compile(
    r"out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?(?:reply|response)|"
    r"\bautoreply\b|vacation|away from (?:the |my )?office|abwesenheit|absence|"
    r"^(?:auto|autosvar|automatisk svar|risposta automatica|r[ée]ponse automatique)\b",
    re.I)
_DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery|mail system|"
                     r"delivery (?:status|subsystem|failure)|undeliver|returned mail|"
                     r"failure notice|delivery notification|nondeliver", re.I)


def _header(msg: Message, name: str) -> str:
    return " ".join(str(msg.get(name, "")).split()).lower()


def is_mailer_daemon(msg: Message) -> bool:
    """Does this look like it came from a mail system rather than a person?"""
    # Not the null Return-Path: RFC 3834 asks auto-replies to use it too.
    return bool(_DAEMON.search(_header(msg, "From")) or _DAEMON.search(_header(msg, "Subject")))


def is_auto_reply(msg: Message, strong: bool = False) -> bool:
    """An automatic answer from a person's mailbox (not a bounce)."""
    if msg.get("X-Autoreply") or msg.get("X-Autorespond") or msg.get("X-Autoresponder"):
        return True
    if _header(msg, "Precedence") in ("auto_reply", "auto-reply"):
        return True
    if msg.get("X-Auto-Response-Suppress") and _SUBJECT.search(_header(msg, "Subject")):
        return True
    if strong:
        return False
    submitted = _header(msg, "Auto-Submitted")
    if submitted.startswith("auto-replied") or submitted.startswith("auto-notified"):
        return True
    return bool(_SUBJECT.search(_header(msg, "Subject")))
