"""The reader's language: gettext catalogs for words, Babel (CLDR) for dates, times, plurals.

``language("ro")`` is cached per process, so a send loads each catalog once. Templates get the
catalog through Jinja's i18n extension (``{{ _("Unsubscribe") }}``, ``{{ ngettext(...) }}``,
new-style: placeholders are ``%(name)s`` and escaped in HTML); Python code calls
``Language.gettext``. Dates and times come from CLDR, so a new catalog gets its dates right
without translating a single pattern (``ro``: ``1 decembrie 2026``, ``14:05``).

Strings in Python that are translated later (at render time, in the reader's language) are
marked with ``N_`` so that ``pybabel extract`` finds them.
"""

from __future__ import annotations

import datetime as dt
import gettext
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from babel.core import Locale
from babel.dates import format_date, format_time
from babel.support import Translations

from digest.config.locales import DOMAIN, LOCALE_DIR, available_locales, resolve_locale

__all__ = ["N_", "Language", "language", "language_names"]

DateStyle = Literal["full", "long", "medium", "short"]


def N_(message: str) -> str:
    """Mark ``message`` for extraction; it is translated where it is shown."""
    return message


@dataclass(frozen=True)
class Language:
    """One language's catalog and CLDR data."""

    code: str
    translations: gettext.NullTranslations

    def gettext(self, message: str, **values: object) -> str:
        text = self.translations.gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values: object) -> str:
        """The plural form for ``n`` (Romanian has three: 1 articol, 3 articole, 20 de
        articole); ``%(num)d`` in the message is ``n``."""
        return self.translations.ngettext(singular, plural, n) % {"num": n, **values}

    def date(self, day: dt.date, style: DateStyle = "long") -> str:
        """``long``: ``28 November 2026`` / ``28 noiembrie 2026``; ``full`` adds the weekday."""
        return format_date(day, style, locale=self.code)

    def time(self, moment: dt.datetime | dt.time) -> str:
        """The time of day as the language writes it (``2:05 PM``, ``14:05``)."""
        return format_time(moment, "short", locale=self.code)

    @property
    def name(self) -> str:
        """The language's own name, capitalised: ``Română``, ``English``."""
        return language_name(self.code)


@lru_cache(maxsize=32)
def language_name(code: str) -> str:
    name = Locale.parse(code).get_display_name(code) or code
    return name[:1].upper() + name[1:]


@lru_cache(maxsize=32)
def language(tag: str | None, default: str = "en") -> Language:
    """The language for a reader's tag (``ro_RO`` -> ``ro``), falling back to ``default``."""
    code = resolve_locale(tag, default)
    translations = Translations.load(str(LOCALE_DIR), [code], DOMAIN)
    return Language(code, translations)


def language_names() -> list[tuple[str, str]]:
    """(code, own name) of every language we have, for a language picker."""
    return [(code, language_name(code)) for code in available_locales()]
