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

__all__ = ["Outcome", "Reply", "ReplyCode", "Stage", "abort_error", "classified_reply",
           "classify", "enhanced_status"]


class ReplyCode(enum.IntEnum):
    """The SMTP reply codes the rules single out (RFC 5321 section 4.2.3)."""

    OK = 250
    SERVICE_NOT_AVAILABLE = 421  # the server is closing the connection
    TEMPORARY_AUTH_FAILURE = 454  # also what throttling providers answer
    EXCEEDED_STORAGE = 552  # mailbox full: soft, whatever the first digit says


class Outcome(enum.StrEnum):
    SENT = "sent"
    DEFERRED = "deferred"  # try again later: 4xx, 421, 552/5.2.2, a drop or a timeout
    FAILED_ADDRESS = "failed_address"  # 5.1.x: the recipient address is bad -> suppress
    FAILED = "failed"  # any other permanent refusal of this one message
    ABORT = "abort"  # 5.7.x or our sender refused: only the operator can fix it -> stop


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


def enhanced_status(text: str) -> tuple[int, int, int] | None:
    """The RFC 3463 enhanced status code at the start of a reply text, if any."""
    match = _ENHANCED.match(text)
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


def classify(code: int, text: str, stage: Stage = Stage.RCPT) -> Outcome:
    """Map one SMTP reply to an outcome (DESIGN.md, "SMTP replies")."""
    if 200 <= code < 300:  # 2xx
        return Outcome.SENT
    if code < 500:
        return Outcome.DEFERRED  # 421, 450, 451, 452, 454 ... all retry later
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


def abort_error(reply: Reply) -> SendAborted:
    return SendAborted(
        f"The SMTP server refused to accept mail from us: {reply.line}",
        "this is a policy or authentication refusal (5.7.x or the sender address); check "
        "DIGEST_SMTP_USERNAME/PASSWORD, that DIGEST_FROM may send through this server "
        "(SPF/DKIM, verified sender) and the provider account. No reader was changed; the "
        "unsent deliveries stay pending -- run `digest send` again once fixed",
    )
