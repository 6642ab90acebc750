"""Parsers for the values of settings: each takes the raw text and returns the value, or raises
``ValueError`` (``settings._Reader`` turns that into a ``ConfigError`` naming the key).
"""

from __future__ import annotations

import re

from digest.config.locales import language_of

__all__ = ["boolean", "ehlo_name", "list_label", "locale"]


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
