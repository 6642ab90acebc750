"""Rendering: templates, escaping, size, per-reader differences, golden files, the MIME helpers.

Golden files live in tests/golden/; regenerate them after an intended template change with
``DIGEST_UPDATE_GOLDEN=1 pytest tests/test_render.py`` and review the diff.
"""

from __future__ import annotations

import binascii
import datetime as dt
import os
import re
from dataclasses import replace
from email.header import decode_header, make_header
from pathlib import Path

import pytest

from digest.compose import ArticleView, Digest, ReaderView
from digest.config.errors import ConfigError
from digest.config.settings import Settings, load_settings
from digest.render.environment import BUILTIN_TEMPLATES
from digest.render.i18n import language
from digest.render.message import Renderer
from digest.render.mime import QpTemplate, encode_phrase
from digest.render.values import excerpt, list_id, subject_text, truncate
from tests.conftest import SECRET
from tests.mailcheck import (
    CUTOFF,
    EDITION,
    NASTY_TITLE,
    STEFAN,
    assert_checklist,
    long_article,
    parse,
    sample_digest,
)

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def fixed_settings() -> Settings:
    """Settings independent of the test database, so golden output never varies."""
    return Settings(
        site_name="Știri de Argeș", site_url="https://stiri.example.ro",
        base_url="https://stiri.example.ro/digest",
        postal_address="Str. Exemplului 1, Pitești 110000, România",
        from_addr="Știri de Argeș <stiri@example.ro>", secret_key=SECRET,
    )


def bodies(settings: Settings, digest: Digest) -> tuple[str, str]:
    message = parse(Renderer(settings).render(digest).message_for(STEFAN).data)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    return text.replace("\r\n", "\n"), html.replace("\r\n", "\n")


def test_titles_are_escaped_in_html_and_verbatim_in_text(settings: Settings) -> None:
    text, html = bodies(settings, sample_digest())
    assert "<script" not in html
    assert "&lt;script&gt;alert(" in html
    assert "“altceva”" in html and "„Nu”" in html  # curly quotes kept as characters
    assert "<script>alert('x')</script>" in text


def test_a_readers_address_is_escaped_in_html_and_verbatim_in_text(settings: Settings) -> None:
    """Each value is encoded once per message and shared by both parts, unless escaping
    changes it: an address may hold ``'`` and ``&``."""
    rendered = Renderer(settings).render(sample_digest())
    odd = replace(STEFAN, subscriber_id=98, email="o'neil&co@example.ro")
    for reader, html_form in ((odd, "o&#x27;neil&amp;co@example.ro"),
                              (STEFAN, STEFAN.email)):
        message = parse(rendered.message_for(reader).data)
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert reader.email in text and html_form in html
        assert rendered.values(reader)["unsubscribe_url"] in text
        assert rendered.values(reader)["unsubscribe_url"] in html
    assert "o'neil&co@example.ro" not in html


def test_html_with_max_items_of_long_articles_stays_under_100_kb(settings: Settings) -> None:
    articles = tuple(long_article(i, image=True, title=f"{NASTY_TITLE} {i}" * 3)
                     for i in range(settings.max_items))
    assert len(articles[0].summary_text) > 1500
    text, html = bodies(settings, Digest(EDITION, articles))
    size = len(html.encode())
    assert 20_000 < size < 100_000, size
    # Excerpts are cut near 300 characters at a word boundary.
    first = re.search(r'class="excerpt text"[^>]*>([^<]*)<', html)
    assert first is not None and 250 < len(first.group(1)) <= 300
    assert first.group(1).endswith("…") and not first.group(1)[-2].isspace()
    assert len(re.findall(r"Read more", text)) == settings.max_items


def test_two_readers_differ_only_in_their_own_headers_and_links(settings: Settings) -> None:
    rendered = Renderer(settings).render(sample_digest())
    other = replace(STEFAN, subscriber_id=99, email="ana@example.ro", name="Ana Pop")
    a, b = rendered.message_for(STEFAN), rendered.message_for(other)
    own_a, own_b = rendered.values(STEFAN), rendered.values(other)
    assert own_a.keys() == {"unsubscribe_url", "preferences_url", "reader_email"}
    assert all(own_a[k] != own_b[k] for k in own_a)

    def neutral(data: bytes, reader_values: dict[str, str], message_id: str) -> str:
        decoded = parse(data)
        lines = [f"{k}: {v}" for k, v in decoded.items() if k not in ("To", "Message-ID",
                                                                       "List-Unsubscribe")]
        for part in decoded.iter_parts():
            lines.append(part.get_content())
        out = "\n".join(lines)
        for key, value in reader_values.items():
            out = out.replace(value, f"[{key}]")
        return out

    assert neutral(a.data, own_a, a.message_id) == neutral(b.data, own_b, b.message_id)
    assert parse(a.data)["To"] != parse(b.data)["To"]
    assert a.message_id != b.message_id


def test_render_once_per_distinct_digest(settings: Settings) -> None:
    renderer = Renderer(settings)
    first = renderer.render(sample_digest())
    assert renderer.render(sample_digest()) is first  # equal digests share the rendering
    assert renderer.render(sample_digest(plain_text_only=True)) is not first
    assert first.subject.startswith("Știri de Argeș, November 28, 2026: Primarul")


def test_renderer_refuses_to_start_without_a_secret_key(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="DIGEST_SECRET_KEY"):
        Renderer(replace(settings, secret_key=None))


def test_operator_template_override(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    footer = (BUILTIN_TEMPLATES / "email" / "_footer.txt.j2").read_text()
    (tmp_path / "email" / "_footer.txt.j2").write_text("Semnat: redacția\n" + footer)
    text, html = bodies(replace(settings, templates_dir=tmp_path), sample_digest())
    assert text.count("Semnat: redacția") == 1
    assert "Semnat" not in html  # the HTML still comes from the built-in templates


def test_unsafe_article_links_fall_back_to_the_site(settings: Settings) -> None:
    bad = replace(long_article(1), url="javascript:alert(1)", image_url="data:image/png,xx")
    _text, html = bodies(settings, Digest(EDITION, (bad,)))
    assert "javascript:" not in html and "data:image" not in html
    assert 'href="https://stiri.example.ro"' in html


@pytest.mark.parametrize("kind", ["html", "txt"])
def test_golden(fixed_settings: Settings, kind: str) -> None:
    text, html = bodies(fixed_settings, sample_digest())
    actual = html if kind == "html" else text
    path = GOLDEN / f"digest.{kind}"
    if os.environ.get("DIGEST_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), "run with DIGEST_UPDATE_GOLDEN=1 to create the golden files"
    assert actual == path.read_text(encoding="utf-8")


# --- wording helpers --------------------------------------------------------------------------

def test_truncate_cuts_at_a_word_boundary() -> None:
    assert truncate("scurt", 300) == "scurt"
    assert truncate("unu doi trei patru", 12) == "unu doi…"
    assert truncate("unu   doi\n trei", 100) == "unu doi trei"
    assert truncate("abcdefghijklmnop", 6) == "abcde…"  # one long word: cut inside it


def test_excerpt_falls_back_to_summary_html_without_tags() -> None:
    article = ArticleView(1, "https://x.ro/a", "T", "", "<p>Un <b>text</b> &amp; atât</p>",
                          CUTOFF)
    assert excerpt(article) == "Un text & atât"


def test_subject_has_site_date_and_truncated_headline() -> None:
    long_title = "Cuvânt " * 40
    digest = Digest(EDITION, (replace(long_article(1), title=long_title),))
    subject = subject_text("Știri", digest, language("en"))
    assert subject.startswith("Știri, November 28, 2026: Cuvânt")
    assert len(subject) < 130 and subject.endswith("…")


def test_list_id_label_is_stable_per_frequency_and_domain() -> None:
    assert list_id("Știri", "stiri.example.ro", EDITION.frequency) == \
        ("Știri", "daily.stiri.example.ro")
    assert list_id("X", "bücher.de", EDITION.frequency)[1] == "daily.xn--bcher-kva.de"
    assert list_id("X", "localhost", EDITION.frequency)[1] == "daily.localhost.invalid"


@pytest.mark.parametrize("env, expected", [
    ({}, "daily.example.ro"),  # the From domain, not the serving host behind the proxy
    ({"DIGEST_LIST_ID": "stiri.example.ro"}, "daily.stiri.example.ro"),
    ({"DIGEST_LIST_ID": "<Stiri.Example.RO>"}, "daily.stiri.example.ro"),
])
def test_list_id_comes_from_the_from_domain_or_its_setting(env: dict[str, str],
                                                           expected: str) -> None:
    settings = load_settings({"DIGEST_BASE_URL": "http://127.0.0.1:8000",
                              "DIGEST_SECRET_KEY": SECRET,
                              "DIGEST_FROM": "Știri <stiri@example.ro>", **env}, env_file=None)
    message = parse(Renderer(settings).render(Digest(EDITION, (long_article(1),))).message_for(
        ReaderView(3, "ana@example.ro", None)).data)
    assert message["List-Id"] == f"Digest <{expected}>"  # DIGEST_SITE_NAME's default


def test_a_list_id_setting_that_is_no_domain_is_refused() -> None:
    with pytest.raises(ConfigError, match="DIGEST_LIST_ID='not a domain' is invalid"):
        load_settings({"DIGEST_LIST_ID": "not a domain"}, env_file=None)


def test_encode_phrase_round_trips_through_the_email_parser() -> None:
    for name in ("Ana", "Pop, Ana", 'Say "hi"', "Ștefan Mureșan", "Ș" * 120, "日本語 " * 30):
        phrase = encode_phrase(name)
        header = f"To: {phrase} <a@example.ro>\r\n\r\n".encode("ascii")
        assert all(len(line) <= 78 for line in header.split(b"\r\n"))
        expected = " ".join(name.split())
        if len(expected.encode()) <= 39:  # one encoded word
            assert parse(header)["To"].addresses[0].display_name == expected
        # RFC 2047 6.2: whitespace between adjacent encoded-words is ignored. (Python's address
        # parser keeps it, so long names are checked with the RFC-following decoder.)
        if not name.isascii():
            decoded = str(make_header(decode_header(phrase.replace("\r\n ", " "))))
            assert decoded == expected


def test_qp_template_with_long_values_keeps_lines_short_and_decodes_exactly() -> None:
    text = "Început ăîșț\n" + "x" * 200 + " @@U@@ după\n@@U@@\nsfârșit"
    template = QpTemplate(text, {"u": "@@U@@"})
    value = "https://example.ro/" + "ț" * 150 + "=?"
    encoded = template.fill({"u": value})
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
    assert all(b < 128 for b in encoded)
    expected = text.replace("@@U@@", value) + "\n"
    assert binascii.a2b_qp(encoded).decode().replace("\r\n", "\n") == expected
    assert template.text_for({"u": value}) == expected


def test_render_is_pure_of_the_clock(settings: Settings) -> None:
    # The Date header comes from the edition, so rendering later gives the same bytes.
    later = Digest(replace(EDITION, cutoff=CUTOFF + dt.timedelta(hours=1)),
                   sample_digest().articles)
    a = Renderer(settings).render(sample_digest()).message_for(STEFAN).data
    b = Renderer(settings).render(later).message_for(STEFAN).data
    assert b"Date: Sat, 28 Nov 2026 07:00:00 +0200" in a
    assert b"Date: Sat, 28 Nov 2026 08:00:00 +0200" in b
    assert_checklist(a)
