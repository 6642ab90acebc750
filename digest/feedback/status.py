"""Enhanced status codes (RFC 3463) -> what a failure means for the address (pure).

``flufl.bounce`` and most MTAs call every 5.x.x "permanent". Permanent is not the same as "the
address is bad": a 5.7.1 spam block is permanent for *this message* and says our sending IP or
content is at fault -- suppressing the reader for it would punish them for our reputation, and
one blocklisting would empty the list. So we look at the subject and detail digits:

- **hard** (suppress): 5.1.x address failures (bad mailbox, bad domain, moved, null MX) except
  5.1.7/5.1.8, which are about *our* sender address; 5.2.1 mailbox disabled; 5.4.4 no route to
  the domain; 5.0.0 and other unspecific 5.x.x unless the words say quota or policy; 5.3.x
  and 5.5.x when the words say the address is unknown ("553 5.3.0 Addressee unknown").
- **soft** (counted; ``DIGEST_SOFT_BOUNCE_LIMIT`` in ``DIGEST_SOFT_BOUNCE_DAYS`` suppress): every
  4.x.x, 5.2.2 mailbox full (RFC 3463 itself calls it possibly transient) and other 5.2.x, 5.3.x,
  5.4.x and 5.5.x system and network trouble.
- **policy** (recorded, not counted, never suppress): 5.7.x, 5.6.x content, 5.2.3/5.3.4 message
  too big, 5.1.7/5.1.8 -- all our side. Shown as ``soft`` to scripts, stored as ``policy``.
"""

from __future__ import annotations

import re

from digest.feedback.report import Kind

__all__ = ["classify", "find_status"]

# An enhanced status code: class.subject.detail (RFC 3463); some MTAs use 3-digit details.
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# A bare SMTP reply code at the start of a diagnostic: "550 ..." or "smtp; 552-...".
_REPLY = re.compile(r"(?:^|;\s*|\s)([245])\d\d[\s-]")
_QUOTA = re.compile(r"quota|mailbox (?:is )?full|over ?quota|insufficient (?:system )?storage|"
                    r"exceeded storage|mailbox size limit", re.I)
_POLICY = re.compile(r"spam|block(?:ed|list)|blacklist|reputation|policy|rejected for policy|"
                     r"denied by|dnsbl|spamhaus|not authorized|dmarc|spf|dkim", re.I)
# The words of a bad address, for 5.x.x replies whose code does not say it (5.0.0, 5.3.0,
# 5.5.0 "550 Unknown user", no status at all).
_ADDRESS = re.compile(r"unknown user|user unknown|addressee unknown|no such (?:user|mailbox|"
                      r"recipient|address)|does not exist|doesn't exist|may not exist|"
                      r"invalid (?:recipient|mailbox|address)|unknown (?:recipient|mailbox)|"
                      r"mailbox unavailable|mailbox not found|no mailbox|no mx record|"
                      r"account (?:is )?(?:disabled|deactivated|inactive)|recipient rejected",
                      re.I)
_OUR_SIDE = frozenset({(1, 7), (1, 8), (2, 3), (3, 4)})


def find_status(*texts: str | None) -> str | None:
    """The first enhanced status code in ``texts`` (Status field, diagnostic, body)."""
    for text in texts:
        if text:
            match = _STATUS.search(text)
            if match:
                return match.group(0)
    return None


def reply_class(text: str | None) -> int | None:
    """The class (2, 4, 5) of a bare SMTP reply code in a diagnostic, when there is no status."""
    match = _REPLY.search(text or "")
    return int(match.group(1)) if match else None


def classify(status: str | None, diagnostic: str | None = None,
             permanent: bool | None = None) -> Kind | None:
    """What a failure means for the address; None when the status says it was delivered.

    ``permanent`` is the detector's own opinion (DSN Action, flufl's set), used only when no
    status code can be found at all.
    """
    words = diagnostic or ""
    match = _STATUS.fullmatch(status or "") or _STATUS.search(status or "")
    if match is None:
        code = reply_class(words)
        if code is None:
            if permanent is None:
                return None
            code = 5 if permanent else 4
        return _unspecific(code, words)
    klass, subject, detail = (int(g) for g in match.groups())
    if klass == 2:
        return None
    if klass == 4:
        return Kind.SOFT
    if subject == 7 or subject == 6 or (subject, detail) in _OUR_SIDE:
        return Kind.POLICY
    if subject == 1 or (subject, detail) in ((2, 1), (4, 4)):
        return Kind.HARD
    if subject == 0:
        return _unspecific(5, words)
    if subject in (3, 5) and _ADDRESS.search(words) and not _QUOTA.search(words):
        return Kind.HARD  # a system or protocol code, but the server says the address is bad
    return Kind.SOFT


def _unspecific(code: int, words: str) -> Kind | None:
    """A failure without a useful status: the server's words decide, else the reply class."""
    if code == 2:
        return None
    if _QUOTA.search(words):
        return Kind.SOFT
    if code == 4:
        return Kind.SOFT
    if _ADDRESS.search(words):
        return Kind.HARD
    if _POLICY.search(words):
        return Kind.POLICY
    return Kind.HARD
