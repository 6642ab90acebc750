"""The rule for each field of a subscriber as it comes in (CLI, CSV import, web, API): topics,
frequency, timezone, send hour and status, each parsed or refused with a hint.
"""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.config.errors import InvalidInput
from digest.readers.addresses import clean_text
from digest.store.models import (
    Frequency,
    SubscriberStatus,
)
from digest.topics import parse_topics

__all__ = ["clean_topics", "parse_frequency", "parse_send_hour", "parse_status", "parse_timezone"]


def clean_topics(raw: str | Sequence[str] | None) -> list[str]:
    """Topics as stored: ``parse_topics`` of text without control characters."""
    if isinstance(raw, str):
        return parse_topics(clean_text(raw))
    return parse_topics([t for t in (clean_text(i) for i in raw or []) if t])


def parse_frequency(raw: str | Frequency | None) -> Frequency:
    if raw is None or raw == "":
        return Frequency.DAILY
    try:
        return Frequency(str(raw).strip().lower())
    except ValueError:
        raise InvalidInput(f"unknown frequency {raw!r}", "use daily or weekly") from None


def parse_timezone(raw: str | None) -> str | None:
    """An IANA zone name, checked, or None."""
    if raw is None or not raw.strip():
        return None
    try:
        return ZoneInfo(raw.strip()).key
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown timezone {raw!r}",
                           "use an IANA name such as Europe/Bucharest") from None


def parse_send_hour(raw: str | int | None) -> int | None:
    """A local hour 0-23, or None (the reader follows DIGEST_SEND_HOUR)."""
    if raw is None or str(raw).strip() == "":
        return None
    try:
        hour = int(str(raw).strip().removesuffix(":00"))
    except ValueError:
        hour = -1
    if not 0 <= hour <= 23:
        raise InvalidInput(f"send hour {raw!r} is not an hour from 0 to 23",
                           "give the local hour the digest should go out, e.g. 7 or 18")
    return hour


def parse_status(raw: str | SubscriberStatus) -> SubscriberStatus:
    try:
        return SubscriberStatus(str(raw).strip().lower())
    except ValueError:
        choices = ", ".join(s.value for s in SubscriberStatus)
        raise InvalidInput(f"unknown status {raw!r}", f"use one of {choices}") from None
