"""The reader's language: catalogs complete and compiled, tags resolved, Babel dates and plurals,
and no English label left in a Romanian digest, confirmation email or page."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from digest.compose import Digest
from digest.config.errors import ConfigError
from digest.config.locales import LOCALE_DIR, available_locales, negotiate, resolve_locale
from digest.config.settings import Settings, load_settings
from digest.render.i18n import language
from digest.render.message import Renderer
from digest.web.confirmation import build_confirmation
from tests.mailcheck import EDITION, STEFAN, assert_checklist, parse, sample_articles

ROOT = Path(__file__).resolve().parent.parent
CEDILLA = re.compile("[şţŞŢ]")  # Romanian wants ș ț (comma below), not the Turkish cedilla


def _catalog(lang: str):  # type: ignore[no-untyped-def]
    with open(LOCALE_DIR / lang / "LC_MESSAGES" / "digest.po", "rb") as f:
        return read_po(f, locale=lang)


def _source_ids() -> set[str | tuple[str, ...]]:
    """Every message the code and templates ask for, as ``pybabel extract`` finds them."""
    method_map = [("digest/templates/**.j2", "jinja2"), ("digest/**.py", "python")]
    options = {"digest/templates/**.j2": {"extensions": "jinja2.ext.i18n",
                                           "trim_blocks": "True", "lstrip_blocks": "True"}}
    found: set[str | tuple[str, ...]] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options, keywords={"_": None, "gettext": None, "N_": None,
                                                      "ngettext": (1, 2)}):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


def test_catalogs_are_complete_and_the_compiled_ones_up_to_date() -> None:
    wanted = _source_ids()
    assert len(wanted) > 100
    assert available_locales() == ("en", "ro")
    for lang in ("en", "ro"):
        po = _catalog(lang)
        ids = {m.id for m in po if m.id}
        assert wanted - ids == set(), f"{lang}: not in the catalog (run pybabel update)"
        assert ids - wanted == set(), f"{lang}: stale entries"
        for m in po:
            if m.id:
                strings = m.string if isinstance(m.string, tuple) else (m.string,)
                assert all(strings) and not m.fuzzy, f"{lang}: untranslated {m.id!r}"
                assert not CEDILLA.search("".join(strings)), m.string
        with open(LOCALE_DIR / lang / "LC_MESSAGES" / "digest.mo", "rb") as f:
            mo = read_mo(f)
        def entries(catalog) -> dict[object, tuple[str, ...]]:  # type: ignore[no-untyped-def]
            return {tuple(m.id) if isinstance(m.id, list | tuple) else m.id:
                    tuple(m.string) if isinstance(m.string, list | tuple) else (m.string,)
                    for m in catalog if m.id}
        assert entries(mo) == entries(po), \
            f"{lang}: digest.mo is stale: pybabel compile -d digest/locale -D digest"
    assert len(_catalog("ro").plural_forms) and _catalog("ro").num_plurals == 3


@pytest.mark.parametrize(("tag", "expected"), [
    ("ro", "ro"), ("ro-RO", "ro"), ("ro_RO", "ro"), ("RO", "ro"), ("en-GB", "en"),
    ("de", "ro"), ("", "ro"), (None, "ro"), ("not a tag!", "ro")])
def test_reader_tags_resolve_with_the_publication_language_as_fallback(
        tag: str | None, expected: str) -> None:
    assert resolve_locale(tag, "ro") == expected


def test_accept_language() -> None:
    assert negotiate("ro-RO,ro;q=0.9,en-US;q=0.8,en;q=0.7", "en") == "ro"
    assert negotiate("de-DE,de;q=0.9,en;q=0.5,ro;q=0.4", "ro") == "en"
    assert negotiate("fr, ro;q=0", "en") == "en"
    assert negotiate(None, "ro") == "ro"


def test_setting_refuses_a_language_without_catalog(tmp_path: Path) -> None:
    assert load_settings({"DIGEST_LOCALE": "ro_RO"}, env_file=None).locale == "ro"
    assert load_settings({}, env_file=None).locale == "en"
    with pytest.raises(ConfigError) as caught:
        load_settings({"DIGEST_LOCALE": "xx"}, env_file=None)
    assert "DIGEST_LOCALE" in caught.value.message and "ro" in (caught.value.hint or "")


def test_babel_dates_and_romanian_plurals() -> None:
    ro, en = language("ro"), language("en")
    assert ro.date(dt.date(2026, 12, 1)) == "1 decembrie 2026"
    assert ro.date(dt.date(2026, 12, 1), "full") == "marți, 1 decembrie 2026"
    assert en.date(dt.date(2026, 12, 1)) == "December 1, 2026"
    assert ro.time(dt.time(14, 5)) == "14:05"
    plural = [ro.ngettext("%(num)d article", "%(num)d articles", n) for n in (1, 3, 19, 20, 101)]
    assert plural == ["1 articol", "3 articole", "19 articole", "20 de articole", "101 articole"]
    assert en.ngettext("%(num)d article", "%(num)d articles", 1) == "1 article"


def _english_fragments() -> set[str]:
    """Pieces of every English label whose Romanian is different: none may show in Romanian."""
    ro = {m.id: m.string for m in _catalog("ro") if m.id}
    fragments: set[str] = set()
    for msgid, string in ro.items():
        for english in (msgid if isinstance(msgid, tuple) else (msgid,)):
            if english in (string if isinstance(string, tuple) else (string,)):
                continue  # the same in both languages (e.g. "%(site)s, %(date)s")
            for piece in re.split(r"%\(\w+\)[sd]", english):
                piece = piece.strip(" .,:;?!()")
                if len(piece) >= 5 or (len(piece) >= 4 and " " not in piece):
                    fragments.add(piece)
    return fragments


def untranslated(text: str) -> list[str]:
    text = " ".join(text.split())
    return sorted(f for f in _english_fragments() if re.search(rf"\b{re.escape(f)}\b", text))


def _message_text(data: bytes) -> str:
    message = parse(data)
    parts = [str(message["Subject"])]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            parts.append(part.get_content())
    html = "\n".join(parts)
    # Attribute values a reader hears or sees (alt, aria-label, title) count too.
    return re.sub(r"<[^>]*?(?:alt|aria-label|title)=\"([^\"]*)\"[^>]*>", r" \1 ", html)


def test_a_romanian_digest_has_no_english_label_and_an_english_one_has_them(
        settings: Settings) -> None:
    renderer = Renderer(settings)
    ro_reader, en_reader = replace(STEFAN, locale="ro-RO"), replace(STEFAN, locale="en")
    ro = renderer.render(Digest(EDITION, sample_articles(), locale="ro-RO"))
    en = renderer.render(Digest(EDITION, sample_articles(), locale="en"))
    assert ro is renderer.render(Digest(EDITION, sample_articles(), locale="ro_RO"))  # one render
    ro_data, en_data = ro.message_for(ro_reader).data, en.message_for(en_reader).data
    assert_checklist(ro_data, postal_address=settings.postal_address)
    assert untranslated(_message_text(ro_data)) == []
    assert len(untranslated(_message_text(en_data))) > 8  # the comparison can fail
    assert ro.subject.startswith("Știri de Argeș, 28 noiembrie 2026: ")
    html = ro.html_for(ro_reader) or ""
    assert '<html lang="ro">' in html and "Rezumatul zilei · sâmbătă, 28 noiembrie 2026" in html
    assert "3 articole noi: " in html and "Citiți mai mult" in html and "Dezabonare" in html
    text = ro.text_for(ro_reader)
    assert "Dezabonare: https://" in text and "Politica de confidențialitate: https://" in text
    weekly = renderer.render(Digest(replace(EDITION, frequency=EDITION.frequency.WEEKLY),
                                    sample_articles(), locale="ro"))
    assert "Rezumatul săptămânii" in (weekly.html_for(ro_reader) or "")
    assert untranslated(_message_text(weekly.message_for(ro_reader).data)) == []


def test_the_confirmation_email_in_romanian(settings: Settings) -> None:
    now = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    ro = build_confirmation(settings, email="ana@example.ro", name="Ana", now=now,
                            url="https://stiri.example.ro/digest/confirm/x", locale="ro_RO")
    en = build_confirmation(settings, email="ana@example.ro", name="Ana", now=now,
                            url="https://stiri.example.ro/digest/confirm/x")
    assert str(parse(ro)["Subject"]) == "Confirmați abonarea la Știri de Argeș"
    assert untranslated(_message_text(ro)) == []
    assert len(untranslated(_message_text(en))) > 5
    assert "Linkul este valabil 14 zile." in " ".join(_message_text(ro).split())
    assert 'lang="ro"' in _message_text(ro)


def test_the_template_catalog_is_current() -> None:
    """digest.pot (what a translator starts a new language from) lists every message."""
    with open(LOCALE_DIR / "digest.pot", "rb") as f:
        pot = {m.id for m in read_po(f) if m.id}
    assert {tuple(i) if isinstance(i, list) else i for i in pot} == _source_ids()
