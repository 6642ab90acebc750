"""Dates as local CMSs write them, registered with feedparser as a date handler.

``Luni, 30 Noi 2026 08:00:00 +0200`` (Romanian), ``Di, 01 Dez 2026 08:00:00 CET`` (German),
``mer., 2 déc. 2026`` (French), timezone abbreviations feedparser does not know (``EET``,
``EEST``, ``CEST`` ... which it would silently read as UTC) and offsets written ``GMT+2`` or
``UTC+02:00``: the day and month names are translated, the zone turned into an offset, and the
result parsed as RFC 822 (or ``YYYY-MM-DD HH:MM``) to the right UTC instant. Strings this
handler does not recognise are left to feedparser's own handlers.
"""

from __future__ import annotations

import calendar
import datetime as dt
import email.utils
import re
import time
import unicodedata

import feedparser

__all__ = ["parse_local_date"]

_MONTHS = {
    1: "ian ianuarie jan janv janvier januar enero ene gennaio gen janeiro januari stycznia",
    2: "feb februarie fev fevr fevrier februar febrero febbraio fevereiro februari lutego",
    3: "mar martie mars marz maerz marzo marco maart mrt marca",
    4: "apr aprilie avr avril april abril abr aprile kwietnia",
    5: "mai may mei mayo maggio mag maja",
    6: "iun iunie jun juin juni junio giugno giu junho czerwca",
    7: "iul iulie jul juil juillet juli julio luglio lug julho lipca",
    8: "aug august aout agosto ago augustus sierpnia",
    9: "sep sept septembrie septembre september septiembre settembre set setembro wrzesnia",
    10: "oct octombrie octobre okt oktober octubre ottobre ott outubro out pazdziernika",
    11: "nov noi noiembrie noie novembre november noviembre novembro listopada",
    12: "dec decembrie decembre dez dezember diciembre dic dicembre dezembro december grudnia",
}
_MONTH = {name: calendar.month_abbr[n] for n, names in _MONTHS.items() for name in names.split()}
_DAY_NAMES = {
    "ro": "luni marti miercuri joi vineri sambata duminica lu ma mi jo vi sa du",
    "de": "montag dienstag mittwoch donnerstag freitag samstag sonntag mo di mi do fr sa so",
    "fr": "lundi mardi mercredi jeudi vendredi samedi dimanche lun mar mer jeu ven sam dim",
    "es": "lunes martes miercoles jueves viernes sabado domingo lun mar mie jue vie sab dom",
    "it": "lunedi martedi mercoledi giovedi venerdi sabato domenica lun mar mer gio ven sab",
    "pt": "segunda terca quarta quinta sexta sabado domingo seg ter qua qui sex sab dom",
    "nl": "maandag dinsdag woensdag donderdag vrijdag zaterdag zondag ma di wo do vr za zo",
    "en": "mon tue wed thu fri sat sun",
}
_DAYS = frozenset(" ".join(_DAY_NAMES.values()).split())
# Zones feedparser's RFC 822 table lacks (it would read them as UTC). IST is India's, the one
# news feeds mean by it.
_ZONES = {
    "eet": "+0200", "eest": "+0300", "cet": "+0100", "cest": "+0200", "met": "+0100",
    "mest": "+0200", "wet": "+0000", "west": "+0100", "bst": "+0100", "msk": "+0300",
    "ist": "+0530", "sast": "+0200", "cat": "+0200", "eat": "+0300", "wat": "+0100",
    "trt": "+0300", "jst": "+0900", "kst": "+0900", "hkt": "+0800", "sgt": "+0800",
    "aest": "+1000", "aedt": "+1100", "acst": "+0930", "awst": "+0800", "nzst": "+1200",
    "nzdt": "+1300", "brt": "-0300", "art": "-0300", "utc": "+0000", "gmt": "+0000",
}
_ENGLISH_DAYS = frozenset(["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
_WORD = re.compile(r"[a-z]+\.?")
_GMT_OFFSET = re.compile(r"\b(?:gmt|utc)\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?\b")
_ISO_LIKE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[ t](\d{1,2}):(\d{2})(?::(\d{2}))?\s*([+-]\d{4})?$")


def _fold(text: str) -> str:
    """Lower case without diacritics: ``Marți`` -> ``marti``, ``déc.`` -> ``dec.``."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _offset(match: re.Match[str]) -> str:
    sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    return f"{sign}{hours:02d}{minutes:02d}"


def _translate(value: str) -> tuple[str, bool]:
    """English RFC 822 words for local ones; and whether anything needed translating."""
    folded = _fold(value)
    text = _GMT_OFFSET.sub(_offset, folded)
    changed = text != folded
    words: list[str] = []
    for index, token in enumerate(re.split(r"(\s+|,)", text)):
        word = token.rstrip(".")
        if _WORD.fullmatch(token) is None:
            words.append(token)
        elif index == 0 and word in _DAYS:  # only a leading word is a weekday ("mar" = March)
            changed = changed or word not in _ENGLISH_DAYS
        elif word in _MONTH:
            changed = changed or _MONTH[word].lower() != word
            words.append(_MONTH[word])
        elif word in _ZONES:
            changed = changed or word not in ("utc", "gmt")
            words.append(_ZONES[word])
        else:
            words.append(token)
    return " ".join("".join(words).replace(",", " ").split()), changed


def parse_local_date(value: str) -> time.struct_time | None:
    """A feedparser date handler: the UTC ``struct_time`` of ``value``, or ``None`` to let
    the next handler try."""
    text, changed = _translate(value)
    if not changed:
        return None
    iso = _ISO_LIKE.match(text)
    if iso:
        y, mo, d, h, mi, s, zone = iso.groups()
        text = (f"{int(d)} {calendar.month_abbr[int(mo)]} {y} {h}:{mi}:{s or '00'} "
                f"{zone or '+0000'}")
    parsed = email.utils.parsedate_tz(text)
    if parsed is None or parsed[0] < 1900:
        return None
    try:
        moment = dt.datetime(*parsed[:6], tzinfo=dt.timezone(dt.timedelta(
            seconds=parsed[9] or 0)))
    except (ValueError, OverflowError):
        return None
    return moment.astimezone(dt.UTC).timetuple()


feedparser.registerDateHandler(parse_local_date)
