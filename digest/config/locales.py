"""Which languages the reader-facing text exists in, and which one a reader gets.

A language exists when its gettext catalog does: ``digest/locale/<lang>/LC_MESSAGES/digest.mo``
(adding a language is adding a catalog; see the README). English is the source language of
every template, so it always exists.

``resolve_locale`` turns whatever a reader or a form gave (``ro``, ``ro-RO``, ``ro_RO``,
``RO``) into one of those languages, falling back to the publication's ``DIGEST_LOCALE``;
``negotiate`` picks one from an ``Accept-Language`` header. Both are cached: a send asks once
per distinct tag, not once per reader.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

__all__ = [
    "LOCALE_DIR",
    "SOURCE_LOCALE",
    "available_locales",
    "language_of",
    "negotiate",
    "resolve_locale",
]

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
SOURCE_LOCALE = "en"  # the language the templates are written in
DOMAIN = "digest"
_TAG = re.compile(r"^([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*$")
_QUALITY = re.compile(r"^q=([01](?:\.\d{0,3})?)$")


@lru_cache(maxsize=1)
def available_locales() -> tuple[str, ...]:
    """The languages with a compiled catalog, English first."""
    found = {p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.mo")}
    return (SOURCE_LOCALE, *sorted(found - {SOURCE_LOCALE}))


def language_of(tag: str | None) -> str | None:
    """``ro_RO`` -> ``ro`` when we have a catalog for it, else None."""
    match = _TAG.match((tag or "").strip())
    if match is None:
        return None
    language = match.group(1).lower()
    return language if language in available_locales() else None


@lru_cache(maxsize=256)
def resolve_locale(tag: str | None, default: str = SOURCE_LOCALE) -> str:
    """The language a reader with ``tag`` gets: theirs if we have it, else ``default``."""
    return language_of(tag) or language_of(default) or SOURCE_LOCALE


@lru_cache(maxsize=256)
def negotiate(accept_language: str | None, default: str = SOURCE_LOCALE) -> str:
    """The best language for an ``Accept-Language`` header (RFC 9110 §12.5.4), else
    ``default``. ``ro-RO,ro;q=0.9,en;q=0.5`` -> ``ro``."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept_language or "").split(",")[:20]):
        tag, *params = (p.strip() for p in item.split(";"))
        quality = 1.0
        for param in params:
            match = _QUALITY.match(param.replace(" ", ""))
            if match:
                quality = float(match.group(1))
        language = language_of(tag)
        if language and quality > 0:
            ranked.append((-quality, position, language))
    return min(ranked)[2] if ranked else resolve_locale(default)
