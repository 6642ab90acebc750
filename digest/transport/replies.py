"""What an SMTP reply means for one message: the reply codes, and the rules of DESIGN.md
("SMTP replies") that turn a code and its enhanced status into an ``Outcome``.

Pure: no I/O. The pool (``transport.pool``) classifies every reply through ``classify``; the
pipeline turns outcomes into ledger rows.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from digest.config.errors import SendAborted

__all__ = ["TOO_LARGE_HINT", "Outcome", "Reply", "ReplyCode", "Stage", "abort_error",
           "classified_reply", "classify", "enhanced_status", "is_session_fault", "reply_hint",
           "too_large"]


class ReplyCode(enum.IntEnum):
    """The SMTP reply codes the rules single out (RFC 5321 section 4.2.3)."""

    OK = 250
    START_MAIL_INPUT = 354  # DATA accepted: the message may follow
    SERVICE_NOT_AVAILABLE = 421  # the server is closing the connection
    TEMPORARY_AUTH_FAILURE = 454  # also what throttling providers answer
    BAD_SEQUENCE = 503  # the session lost its place (a proxy, a pipelining bug): not the reader
    AUTH_FAILED = 535  # wrong user name or password
    EXCEEDED_STORAGE = 552  # mailbox full: soft, whatever the first digit says -- unless the
    # enhanced code (5.3.4) or the text says the *message* is too large: see ``too_large``


class Outcome(enum.StrEnum):
    SENT = "sent"
    DEFERRED = "deferred"  # try again later: 4xx, 421, 552/5.2.2, a drop or a timeout
    FAILED_ADDRESS = "failed_address"  # 5.1.x: the recipient address is bad -> suppress
    FAILED = "failed"  # any other permanent refusal of this one message
    ABORT = "abort"  # 5.7.x or our sender refused: only the operator can fix it -> stop
    WITHDRAWN = "withdrawn"  # never sent: the caller no longer wanted it (an unsubscribe)


class Stage(enum.StrEnum):
    """Which command the server answered: a 5xx to MAIL FROM is about us, not the reader."""

    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"


@dataclass(frozen=True, slots=True)
class Reply:
    outcome: Outcome
    code: int | None  # None: no reply at all (drop, timeout, refused connection)
    text: str

    @property
    def line(self) -> str:
        """The reply as the server said it, e.g. ``250 2.0.0 OK queued``."""
        return f"{self.code} {self.text}" if self.code is not None else self.text


_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
# 5.1.7 / 5.1.8 are about the *sender's* address: our configuration, not the reader's mailbox.
_SENDER_SUBJECTS = frozenset({7, 8})
# RFC 3463: 5.3.4 "message too big for system", 5.2.3 "message length exceeds administrative
# limit". Servers without enhanced codes say it in words (aiosmtpd: "Too much mail data").
_TOO_LARGE_CODES = frozenset({(5, 3, 4), (5, 2, 3)})
_TOO_LARGE_WORDS = re.compile(r"too (much|big|large)|size exceeds|exceeds .*size", re.IGNORECASE)
TOO_LARGE_HINT = (
    "the SMTP server refuses messages this large: lower DIGEST_MAX_ITEMS (fewer articles per "
    "digest), keep images as links rather than inline data, trim custom templates in "
    "DIGEST_TEMPLATES_DIR, or raise the server's size limit (Postfix: message_size_limit)")


def enhanced_status(text: str) -> tuple[int, int, int] | None:
    """The RFC 3463 enhanced status code at the start of a reply text, if any."""
    match = _ENHANCED.match(text)
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


def is_session_fault(code: int | None) -> bool:
    """A reply about the session, not the message: start a fresh session and try again."""
    return code == ReplyCode.BAD_SEQUENCE


def too_large(code: int, text: str) -> bool:
    """The server refuses this message for its size (permanent for this message only)."""
    if code < 500:
        return False
    enhanced = enhanced_status(text)
    if enhanced is not None:
        return enhanced in _TOO_LARGE_CODES
    return code == ReplyCode.EXCEEDED_STORAGE and _TOO_LARGE_WORDS.search(text) is not None


def classify(code: int, text: str, stage: Stage = Stage.RCPT) -> Outcome:
    """Map one SMTP reply to an outcome (DESIGN.md, "SMTP replies")."""
    if 200 <= code < 300:  # 2xx
        return Outcome.SENT
    if code < 500 or is_session_fault(code):
        return Outcome.DEFERRED  # 421, 450, 451, 452, 454, 503 ... all retry later
    if too_large(code, text):  # at MAIL too (SIZE=): about this message, not about us
        return Outcome.FAILED
    enhanced = enhanced_status(text)
    if enhanced is not None and enhanced[1] == 7:
        return Outcome.ABORT  # policy / authentication: retrying or suppressing cannot help
    if stage is Stage.MAIL:
        return Outcome.ABORT  # the server refuses our envelope sender for every reader
    if code == ReplyCode.EXCEEDED_STORAGE or enhanced == (5, 2, 2):
        return Outcome.DEFERRED  # mailbox full is soft, whatever the first digit says
    if enhanced is not None and enhanced[1] == 1 and enhanced[2] not in _SENDER_SUBJECTS:
        return Outcome.FAILED_ADDRESS
    return Outcome.FAILED


def classified_reply(code: int, text: str, stage: Stage) -> Reply:
    """The server's reply to ``stage``, with its outcome."""
    return Reply(classify(code, text, stage), code, text)


def reply_hint(reply: Reply) -> str | None:
    """What the operator can do about a refusal that is not the reader's fault, if anything."""
    if reply.code is not None and too_large(reply.code, reply.text):
        return TOO_LARGE_HINT
    return None


def abort_error(reply: Reply) -> SendAborted:
    return SendAborted(
        f"The SMTP server refused to accept mail from us: {reply.line}",
        "this is a policy or authentication refusal (5.7.x or the sender address); check "
        "DIGEST_SMTP_USERNAME/PASSWORD, that DIGEST_FROM may send through this server "
        "(SPF/DKIM, verified sender) and the provider account. No reader was changed; the "
        "unsent deliveries stay pending -- run `digest send` again once fixed",
    )
