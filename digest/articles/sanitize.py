"""Making untrusted HTML safe to store, show on a page and put in an email.

Everything an article carries (feed summaries, CMS imports) goes through ``sanitize_html``
before it is stored: nh3 (ammonia) keeps a small allow-list of formatting tags, drops every
script, style, event handler and ``style`` attribute, and keeps only http, https and mailto
links (``javascript:``, ``data:``, ``vbscript:`` and friends are removed). Relative links are made
absolute against ``base_url`` so they still work in an inbox.

``to_text`` turns HTML into readable plain text (paragraph breaks kept) and ``excerpt`` cuts it
to a one-line teaser on a word boundary; the email renderer reuses both.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import nh3

__all__ = [
    "ALLOWED_TAGS", "SAFE_SCHEMES", "excerpt", "safe_image_url", "safe_url", "sanitize_html",
    "strip_tags", "to_text",
]

# Longer links are broken in practice, and would not fit the store's URL columns.
MAX_URL = 2000
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
# Images are fetched by the reader's mail client: only http(s), never mailto or data.
_IMAGE_SCHEMES = frozenset({"http", "https"})

ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "dl", "dt",
    "em", "figcaption", "figure", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "li",
    "mark", "ol", "p", "pre", "q", "s", "small", "span", "strong", "sub", "sup", "table",
    "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
})
_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start"},
}
# Removed together with everything inside them (text in a <script> is not article text).
_DROP_WITH_CONTENT = frozenset({
    "script", "style", "iframe", "object", "embed", "svg", "math", "noscript", "template",
    "form", "select", "textarea", "button", "frameset", "applet",
})
_URL_ATTRIBUTES = frozenset({"href", "src", "cite"})
_IMG_WITHOUT_SRC = re.compile(r"<img(?![^>]*\ssrc=)[^>]*>")
_SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x20\x7f]+")


def safe_url(url: str | None, base_url: str | None = None, *,
             schemes: frozenset[str] = SAFE_SCHEMES) -> str | None:
    """``url`` made absolute against ``base_url`` if it has an allowed scheme, else ``None``.

    Browsers ignore tabs, newlines and control characters inside a scheme (``java\\tscript:``),
    so they are removed before the scheme is read. ``url`` is the URL itself, already decoded
    by whoever read it (XML, HTML or JSON parser): it is never entity-decoded again, or
    ``?id=0&section=1`` would become ``?id=0§ion=1``.
    """
    if not url:
        return None
    cleaned = _CONTROL.sub("", url.strip())
    if not cleaned:
        return None
    if base_url:
        cleaned = urljoin(base_url, cleaned)
    try:
        parts = urlsplit(cleaned)
    except ValueError:
        return None
    if parts.scheme.lower() not in schemes:
        return None
    if parts.scheme.lower() != "mailto" and not parts.netloc:
        return None
    return cleaned if len(cleaned) <= MAX_URL else None


def safe_image_url(url: str | None, base_url: str | None = None) -> str | None:
    """Like ``safe_url`` but only http(s): the URL of an image a mail client will load."""
    return safe_url(url, base_url, schemes=_IMAGE_SCHEMES)


def sanitize_html(html: str | None, base_url: str | None = None,
                  images: list[str] | None = None) -> str:
    """Untrusted HTML -> HTML with only allow-listed tags, attributes and URL schemes.

    The HTML parser (html5ever, inside nh3) decodes attribute values once, by the HTML rules
    (``&copy=3`` in an ``href`` stays as written); ``images`` receives the absolute URL of every
    ``<img>`` kept, in document order.
    """
    if not html or not html.strip():
        return ""

    def keep(tag: str, attribute: str, value: str) -> str | None:
        if attribute in _URL_ATTRIBUTES:
            if tag != "img":
                return safe_url(value, base_url)
            checked = safe_image_url(value, base_url)
            if checked is not None and images is not None and attribute == "src":
                images.append(checked)
            return checked
        return value

    cleaned = nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(_DROP_WITH_CONTENT),
        attributes={tag: set(attrs) for tag, attrs in _ATTRIBUTES.items()},
        attribute_filter=keep,
        url_schemes=set(SAFE_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    # An <img> whose src was refused is useless and breaks the "every img has a source" rule
    # of the email renderer; nh3's output is normalised, so this pattern is reliable.
    return _IMG_WITHOUT_SRC.sub("", str(cleaned)).strip()


_BLOCK_TAGS = frozenset({
    "p", "div", "blockquote", "pre", "ul", "ol", "li", "dl", "dt", "dd", "table", "tr",
    "h1", "h2", "h3", "h4", "h5", "h6", "figure", "figcaption", "section", "article", "header",
    "footer", "hr", "caption",
})
_SKIP_TAGS = frozenset({"script", "style", "template", "noscript"})


class _TextExtractor(HTMLParser):
    """Collects text; a block element starts a new paragraph, ``<br>`` a new line."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skipping += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")
        elif tag == "td" or tag == "th":
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            # Source line breaks are just spaces in HTML; only <br> and blocks break lines.
            self.parts.append(_SPACES.sub(" ", data))


def to_text(html: str | None) -> str:
    """HTML -> plain text: entities decoded, spaces collapsed, paragraphs separated by a blank
    line."""
    if not html:
        return ""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    raw = "".join(parser.parts)
    paragraphs = []
    for block in re.split(r"\n\s*\n", raw):
        lines = [" ".join(line.split()) for line in block.split("\n")]
        text = "\n".join(line for line in lines if line)
        if text:
            paragraphs.append(text)
    return "\n\n".join(paragraphs)


_DROP_BLOCK = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"</?[A-Za-z!][^>]*>")


def strip_tags(text: str) -> str:
    """Plain text that may carry stray markup (feeds mislabel): tags removed, scripts with their
    content, and entities left alone -- in plain text ``&copy`` is five characters."""
    return _TAG.sub("", _DROP_BLOCK.sub("", text))


def excerpt(text: str, limit: int = 300) -> str:
    """One line of at most ``limit`` characters, cut at a word boundary with an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–—") + "…"
