"""HTML sanitizing, safe URLs and plain-text extraction."""

from __future__ import annotations

import pytest

from digest.articles.sanitize import excerpt, safe_image_url, safe_url, sanitize_html, to_text

PAYLOADS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    '<img src=x onerror="alert(1)">',
    '<img src="javascript:alert(1)">',
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JAVASCRIPT:alert(1)">x</a>',
    '<a href=" javascript:alert(1)">x</a>',
    '<a href="java\tscript:alert(1)">x</a>',
    '<a href="java&#x09;script:alert(1)">x</a>',
    '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">x</a>',
    '<a href="&#x6A;avascript:alert(1)">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
    '<svg onload="alert(1)"><script>alert(1)</script></svg>',
    '<iframe src="https://evil.example/"></iframe>',
    '<object data="https://evil.example/x.swf"></object><embed src="https://evil.example/x">',
    '<p style="background:url(javascript:alert(1))">styled</p>',
    "<style>@import 'https://evil.example/x.css';</style>",
    '<form action="https://evil.example/"><input name="password"></form>',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="javascript:alert(1)//">',
    '<body onload="alert(1)">text</body>',
    '<div onmouseover="alert(1)">hover</div>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph>"
    "</table></mtext></math>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<!--<img src=x onerror=alert(1)>-->",
    '<a href="https://ok.example/" onclick="alert(1)">ok</a>',
    '<details open ontoggle="alert(1)">x</details>',
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_payload_survives(payload: str) -> None:
    cleaned = sanitize_html(payload, "https://news.example.ro/a/1").lower()
    for bad in ("<script", "javascript", "vbscript", "data:", "onerror", "onload", "onclick",
                "onmouseover", "ontoggle", "<iframe", "<object", "<embed", "<style", "style=",
                "<form", "<input", "<meta", "<base", "<svg", "<math", "alert("):
        assert bad not in cleaned, (payload, cleaned)


def test_formatting_and_safe_links_are_kept() -> None:
    html = ('<h2>Titlu</h2><p>Un <strong>text</strong> cu <a href="/stiri/2" title="t">'
            'link</a> și <a href="mailto:redactie@example.ro">e-mail</a>.</p>'
            '<img src="img/p.jpg" alt="Poză" width="300" height="200"><ul><li>unu</li></ul>')
    cleaned = sanitize_html(html, "https://stiri.example.ro/stiri/1")
    assert "<h2>Titlu</h2>" in cleaned
    assert "<strong>text</strong>" in cleaned
    assert 'href="https://stiri.example.ro/stiri/2"' in cleaned
    assert 'rel="noopener noreferrer nofollow"' in cleaned
    assert 'href="mailto:redactie@example.ro"' in cleaned
    assert 'src="https://stiri.example.ro/stiri/img/p.jpg"' in cleaned
    assert 'alt="Poză"' in cleaned and 'width="300"' in cleaned
    assert "<li>unu</li>" in cleaned


def test_an_image_whose_source_is_refused_is_dropped() -> None:
    assert sanitize_html('<p>a<img src="data:image/png;base64,AAAA" alt="x">b</p>') == "<p>ab</p>"
    assert sanitize_html('<img src="mailto:x@example.ro">') == ""


def test_empty_input() -> None:
    assert sanitize_html(None) == "" and sanitize_html("   ") == ""
    assert to_text(None) == "" and to_text("") == ""


@pytest.mark.parametrize(("url", "base", "expected"), [
    ("https://a.example/x", None, "https://a.example/x"),
    ("/x?y=1", "https://a.example/dir/page", "https://a.example/x?y=1"),
    ("mailto:ana@example.ro", None, "mailto:ana@example.ro"),
    ("javascript:alert(1)", None, None),
    ("  JaVaScRiPt:alert(1)", "https://a.example/", None),
    ("java\nscript:alert(1)", "https://a.example/", None),
    ("data:text/html,hi", None, None),
    ("ftp://a.example/file", None, None),
    ("relative/only", None, None),
    ("https://", None, None),
    ("", None, None),
    ("https://a.example/" + "x" * 2000, None, None),
])
def test_safe_url(url: str, base: str | None, expected: str | None) -> None:
    assert safe_url(url, base) == expected


def test_safe_image_url_is_http_only() -> None:
    assert safe_image_url("mailto:x@example.ro") is None
    assert safe_image_url("//cdn.example.ro/p.jpg", "https://stiri.example.ro/") == \
        "https://cdn.example.ro/p.jpg"


def test_to_text_keeps_paragraphs_and_decodes_entities() -> None:
    html = ("<p>Primul   paragraf,\n cu „ghilimele” &amp; diacritice: ș ț ă.</p>"
            "<script>var x = 1;</script><p>Al doilea<br>rând nou</p><ul><li>a</li><li>b</li></ul>")
    assert to_text(html) == ("Primul paragraf, cu „ghilimele” & diacritice: ș ț ă.\n\n"
                             "Al doilea\nrând nou\n\na\n\nb")


def test_to_text_leaves_plain_text_alone() -> None:
    assert to_text("AT&T profits rise 3 < 4") == "AT&T profits rise 3 < 4"


def test_excerpt_cuts_on_a_word_boundary() -> None:
    text = "Consiliul local a aprobat bugetul pentru noul parc din centrul orașului"
    assert excerpt(text, 200) == text
    short = excerpt(text, 40)
    assert len(short) <= 40 and short.endswith("…")
    assert short == "Consiliul local a aprobat bugetul…"
    assert excerpt("line one\n\nline two") == "line one line two"
