"""Parsers for the values of settings: each takes the raw text and returns the value, or raises
``ValueError`` (``settings._Reader`` turns that into a ``ConfigError`` naming the key).
"""

from __future__ import annotations

import enum
import re

from digest.config.locales import language_of

__all__ = ["Weekday", "boolean", "ehlo_name", "hour", "list_label", "locale"]


def boolean(raw: str) -> bool:
    value = raw.lower()
    if value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError(raw)
    return value in ("1", "true", "yes", "on")


def list_label(raw: str) -> str:
    """A List-Id label (RFC 2919): dotted, ASCII letters, digits and hyphens."""
    label = raw.strip().strip("<>").lower()
    parts = label.split(".")
    if len(parts) < 2 or not all(p and p.replace("-", "").isalnum() and p.isascii()
                                 for p in parts):
        raise ValueError(raw)
    return label


def locale(raw: str) -> str:
    """``ro_RO`` -> ``ro``; a language without a catalog is refused (ValueError)."""
    language = language_of(raw)
    if language is None:
        raise ValueError(raw)
    return language


def ehlo_name(raw: str) -> str | None:
    """A name for EHLO: a domain name or an address literal such as ``[192.0.2.1]``."""
    name = raw.strip()
    if not name:
        return None
    if not re.fullmatch(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", name):
        raise ValueError(name)
    return name


class Weekday(enum.IntEnum):
    """A day of the week, numbered like ``date.weekday()`` (Monday 0)."""

    MONDAY = 0
    TUESDAY = 1
    WEDNESDAY = 2
    THURSDAY = 3
    FRIDAY = 4
    SATURDAY = 5
    SUNDAY = 6

    @classmethod
    def parse(cls, raw: str) -> Weekday:
        """``monday``, ``Mon`` ... (any case); raises ``KeyError`` otherwise."""
        name = raw.strip().upper()
        for day in cls:
            if len(name) >= 3 and day.name.startswith(name):
                return day
        raise KeyError(raw)


def hour(raw: str) -> int:
    """An hour of the day, 0 to 23."""
    value = int(raw)
    if not 0 <= value <= 23:
        raise ValueError(raw)
    return value
