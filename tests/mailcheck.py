"""Test helpers for the digest email: sample digests, and the DESIGN.md standards checklist
asserted on raw message bytes (parsed with the stdlib's modern email policy)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from email.message import EmailMessage
from html.parser import HTMLParser

from digest.compose import ArticleView, Digest, EditionView, ReaderView
from digest.store.models import Frequency

__all__ = [
    "CUTOFF",
    "EDITION",
    "STEFAN",
    "assert_checklist",
    "long_article",
    "parse",
    "sample_articles",
    "sample_digest",
]

CUTOFF = dt.datetime(2026, 11, 28, 5, 0, tzinfo=dt.UTC)  # 07:00 in Bucharest
EDITION = EditionView(7, Frequency.DAILY, dt.date(2026, 11, 28), CUTOFF)
STEFAN = ReaderView(42, "stefan.muresan@example.ro", "Ștefan Mureșan")
NASTY_TITLE = "Primarul a spus „Nu” și “altceva” <script>alert('x')</script> & alte știri"

_WORDS = ("Consiliul Județean Argeș a aprobat miercuri bugetul pentru drumurile din zonă, "
          "iar lucrările încep în primăvară, după licitația organizată de primărie. ")


def long_article(i: int, *, hours: float = 1.0, topics: tuple[str, ...] = (),
                 title: str | None = None, image: bool = False) -> ArticleView:
    return ArticleView(
        id=i, url=f"https://stiri.example.ro/articol/{i}-drumuri-judetene",
        title=title or f"Știrea numărul {i}: drumurile județene intră în reparații",
        summary_text=_WORDS * 12, summary_html=f"<p>{_WORDS * 12}</p>",
        published_at=CUTOFF - dt.timedelta(hours=hours + i / 10), topics=topics,
        image_url=f"https://stiri.example.ro/img/{i}.jpg" if image else None,
        author="Ana Popescu" if i % 2 else None,
    )


def sample_articles() -> tuple[ArticleView, ...]:
    return (
        long_article(1, title=NASTY_TITLE, image=True),
        long_article(2),
        long_article(3, image=True),
    )


def sample_digest(plain_text_only: bool = False) -> Digest:
    return Digest(EDITION, sample_articles(), plain_text_only)


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def _check_html(html: str) -> _Html:
    parsed = _Html()
    parsed.feed(html)
    tags = [t for t, _ in parsed.tags]
    assert "script" not in tags and "form" not in tags
    tables = [a for t, a in parsed.tags if t == "table"]
    assert tables and all(a.get("role") == "presentation" for a in tables)
    for tag, attrs in parsed.tags:
        if tag == "img":
            assert attrs.get("alt") and attrs.get("width") and attrs.get("height"), attrs
            assert int(attrs["width"] or 0) <= 600
        if tag == "table" and attrs.get("width", "").isdigit():  # type: ignore[union-attr]
            assert int(attrs["width"] or 0) <= 600
    # Inlined: what is left in <style> is media queries only.
    for css in parsed.styles:
        outside = re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", css)
        assert outside.strip() == "", f"non-media CSS left in <style>: {outside[:200]!r}"
    assert any('style="' in str(a) or a.get("style") for _, a in parsed.tags)
    assert len(html.encode()) < 100_000
    return parsed


def assert_checklist(data: bytes, *, unsubscribe_url: str | None = None,
                     postal_address: str | None = None, html_expected: bool = True) -> EmailMessage:
    """Every line of DESIGN.md's standards checklist that applies to one message."""
    # 7-bit clean, CRLF only, no line over 998 octets.
    assert all(b < 128 for b in data), "raw message is not 7-bit clean"
    assert b"\n" not in data.replace(b"\r\n", b""), "bare LF in message"
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    message = parse(data)
    for name in ("Date", "From", "To", "Subject", "Message-ID", "MIME-Version"):
        assert len(message.get_all(name, [])) == 1, name
    assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+\.[^<>@\s]+>", message["Message-ID"])
    # Encoded-words only where a phrase may be; never in an address or List-Unsubscribe.
    unfolded = re.sub(r"\r\n[ \t]", " ", head)
    for line in unfolded.split("\r\n"):
        name, _, value = line.partition(": ")
        if "=?" in value:
            assert name in ("Subject", "From", "To", "Reply-To", "List-Id"), line
            assert "=?" not in value[value.rfind("<"):] if "<" in value else True, line
    for name in ("Subject", "From", "To"):
        raw = re.search(rf"^{name}: ([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head, re.M)
        assert raw is not None
        assert raw.group(1).isascii()
        if not str(message[name]).isascii():
            assert "=?utf-8?" in raw.group(1).lower(), f"{name} must be RFC 2047 encoded"
    lu = re.search(r"^List-Unsubscribe: ([^\r\n]*)", head, re.M)
    assert lu is not None and not head[lu.end():].startswith(("\r\n ", "\r\n\t")), "folded"
    value = lu.group(1)
    assert re.fullmatch(r"<https://[^\s<>]+>", value), value
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(r".+ <[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+>", str(message["List-Id"]))
    if unsubscribe_url is not None:
        assert value == f"<{unsubscribe_url}>"
    # Structure and parts.
    if html_expected:
        assert message.get_content_type() == "multipart/alternative"
        parts = list(message.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    else:
        assert message.get_content_type() == "text/plain"
        parts = [message]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    text = parts[0].get_content()
    if html_expected:
        html = parts[1].get_content()
        _check_html(html)
        for href in re.findall(r'href="([^"]+)"', html):
            url = href.replace("&amp;", "&")
            assert url in text, f"link {url} missing from the text part"
    long_lines = [ln for ln in text.splitlines() if len(ln) > 78 and "://" not in ln]
    assert not long_lines, long_lines
    if unsubscribe_url is not None:
        assert unsubscribe_url in text
    if postal_address:
        assert postal_address in text.replace("\n", " ")
    return message
