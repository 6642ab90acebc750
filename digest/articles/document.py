"""Downloaded bytes -> text a feed parser can read safely, or a refusal that names what came.

Decoding follows what feedparser does (RFC 3023): a byte-order mark first, then the charset of
the HTTP ``Content-Type``, then the XML declaration, then UTF-8 -- the first that decodes the
bytes wins. A UTF-8 document with a stray windows-1252 byte keeps its UTF-8 and only that byte
is read as windows-1252 (feedparser would re-read the whole feed as windows-1252: mojibake).

Then the recoverable mistakes CMSs make are repaired, outside CDATA sections and comments:
anything before ``<?xml`` or a feed's root element (blank lines from a WordPress plugin, a
comment, a PHP notice), a bare ``&``
(``Ploiești & Brașov``, ``a.php?id=4&cat=2``), HTML entities such as ``&nbsp;`` that XML does
not define, and control characters XML forbids. What is left is checked with expat:

* a document that declares entities (``<!ENTITY``: billion-laughs bombs, external entity
  tricks) is refused outright; nothing external is ever loaded (no DTD, no entity);
* a document that ends before its root element is closed is refused as truncated;
* any other XML error is kept, not fatal: feedparser's lenient parser reads what it can, and the
  error is reported only when it finds no feed.
"""

from __future__ import annotations

import codecs
import enum
import html.entities
import re
import xml.parsers.expat
from dataclasses import dataclass
from typing import Any

__all__ = ["Document", "FeedRejected", "Kind", "prepare"]

_SNIFF = 2048
_DECLARED = re.compile(rb"""<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._:-]+)""")
_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_XML_DECL = re.compile(r"<\?xml\b[^>]*\?>")
_ROOT = re.compile(r"<[A-Za-z_]")
_FEED_ROOT = re.compile(r"<(?:rss|feed|rdf:RDF)\b")
_HTML_START = re.compile(r"<(?:!doctype\s+html|html)\b", re.IGNORECASE)
_ENTITY_DECL = re.compile(r"<!ENTITY", re.IGNORECASE)
_SECTIONS = re.compile(r"(<!\[CDATA\[.*?\]\]>|<!--.*?-->)", re.DOTALL)
_AMPERSAND = re.compile(r"&(#[0-9]{1,7};|#[xX][0-9a-fA-F]{1,6};|[A-Za-z_][A-Za-z0-9._-]*;)?")
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_XML_ENTITIES = frozenset({"amp;", "lt;", "gt;", "quot;", "apos;"})
# GB2312 and GBK labels are read as their superset, as browsers and feedparser's chardet do.
_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030"}
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))
_TRUNCATED = frozenset(xml.parsers.expat.errors.codes[name] for name in (
    xml.parsers.expat.errors.XML_ERROR_NO_ELEMENTS,
    xml.parsers.expat.errors.XML_ERROR_UNCLOSED_TOKEN,
    xml.parsers.expat.errors.XML_ERROR_UNCLOSED_CDATA_SECTION,
    xml.parsers.expat.errors.XML_ERROR_PARTIAL_CHAR))


class FeedRejected(ValueError):
    """The document is not a feed we accept; the message says why, for the fetch report."""


class Kind(enum.StrEnum):
    XML = "xml"
    JSON = "json"


@dataclass(frozen=True)
class Document:
    kind: Kind
    text: str
    root: str | None = None  # the XML root element's name
    xml_error: str | None = None  # a well-formedness error left for the lenient parser


def _stray_byte(error: UnicodeError) -> tuple[str, int]:
    """Decode error handler: an invalid UTF-8 byte is read as windows-1252 (latin-1 for the
    five bytes windows-1252 leaves undefined)."""
    assert isinstance(error, UnicodeDecodeError)
    bad = error.object[error.start:error.end]
    return "".join(bytes([b]).decode("cp1252", "ignore") or chr(b) for b in bad), error.end


codecs.register_error("digest-stray-cp1252", _stray_byte)


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = _ALIASES.get(label.lower(), label.lower())
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _decode(data: bytes, content_type: str | None) -> str:
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data[len(bom):].decode(codec, "replace")
    head = data[:4]
    if len(head) == 4 and head[1] == 0 and head[3] == 0 and head[0] and head[2]:
        return data.decode("utf-16-le", "replace")  # UTF-16 without a BOM
    if len(head) == 4 and head[0] == 0 and head[2] == 0 and head[1] and head[3]:
        return data.decode("utf-16-be", "replace")
    match = _CHARSET.search(content_type or "")
    http = _codec(match.group(1) if match else None)
    found = _DECLARED.search(data[:_SNIFF])
    declared = _codec(found.group(1).decode("ascii") if found else None)
    if declared is not None and declared.startswith("utf-16"):
        declared = None  # declared UTF-16 but ASCII-compatible bytes: the label is wrong
    candidates = [c for c in dict.fromkeys([http, declared, "utf-8"]) if c]
    if declared == "utf-8" and http != "utf-8":
        # A server default (Apache's ISO-8859-1) against a document that is valid UTF-8 and says
        # so: the document is right.
        candidates.insert(0, "utf-8")
    for codec in candidates:
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    if candidates[0] == "utf-8":
        return data.decode("utf-8", "digest-stray-cp1252")
    return data.decode(candidates[0], "replace")


def _entity(match: re.Match[str]) -> str:
    ref = match.group(1)
    if ref is None:
        return "&amp;"  # a bare ampersand
    if ref.startswith("#"):
        code = int(ref[2:-1], 16) if ref[1] in "xX" else int(ref[1:-1])
        legal = code in (9, 10, 13) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0x10FFFF
        return match.group(0) if legal and code not in (0xFFFE, 0xFFFF) else ""
    if ref in _XML_ENTITIES:
        return match.group(0)
    chars = html.entities.html5.get(ref)
    if chars is None:
        return "&amp;" + ref  # an unknown name: the text as written
    return "".join(f"&#{ord(c)};" for c in chars)


def _repair(text: str) -> str:
    text = _FORBIDDEN.sub("", text)
    parts = _SECTIONS.split(text)
    parts[::2] = [_AMPERSAND.sub(_entity, part) for part in parts[::2]]
    return "".join(parts)


def _refuse_entities(*_args: Any) -> None:
    raise FeedRejected("the document declares XML entities (<!ENTITY>); refused as a "
                       "possible entity-expansion attack")


def _check(text: str) -> tuple[str | None, str | None]:
    """(root element, well-formedness error or None); raises for entities and truncation."""
    parser = xml.parsers.expat.ParserCreate()
    # With a "foreign DTD" assumed, an undefined entity is skipped rather than fatal; nothing
    # external is ever loaded because no ExternalEntityRefHandler is set.
    parser.UseForeignDTD(True)
    parser.EntityDeclHandler = _refuse_entities
    roots: list[str] = []

    def start(name: str, _attrs: Any) -> None:
        if not roots:
            roots.append(name)

    parser.StartElementHandler = start
    try:
        parser.Parse(text, True)
    except xml.parsers.expat.ExpatError as exc:
        reason = xml.parsers.expat.ErrorString(exc.code)
        where = f"line {exc.lineno}, column {exc.offset}"
        if exc.code in _TRUNCATED:
            raise FeedRejected(f"not well-formed XML at {where}: {reason} (the document ends "
                               "early: a truncated download?)") from None
        return (roots[0] if roots else None), f"not well-formed XML at {where}: {reason}"
    return (roots[0] if roots else None), None


def prepare(data: bytes, content_type: str | None) -> Document:
    """Decode, repair and check downloaded bytes; raise ``FeedRejected`` for what is unsafe
    or is plainly not a feed."""
    if not data.strip():
        raise FeedRejected("empty response: not a feed")
    text = _decode(data, content_type).lstrip("\ufeff")
    declaration = text.find("<?xml", 0, _SNIFF)
    if declaration > 0:  # blank lines, a comment or a PHP warning before the declaration
        text = text[declaration:]
    stripped = text.lstrip()
    feed = _FEED_ROOT.search(stripped, 0, _SNIFF) if declaration < 0 else None
    if feed and feed.start() and not _HTML_START.search(stripped, 0, feed.start()):
        stripped = stripped[feed.start():]  # a PHP notice or a stray line before <rss>
    if stripped[:1] in ("{", "["):
        return Document(Kind.JSON, stripped)
    if not stripped.startswith("<"):
        media = (content_type or "").split(";")[0].strip().lower()
        binary = sum(1 for c in stripped[:512] if c in "\x00\ufffd") > 8
        if binary or (media and not media.startswith("text/") and "xml" not in media):
            raise FeedRejected(f"not a feed: the server sent {media or 'binary data'}")
        raise FeedRejected("plain text, not a feed (no RSS, Atom or JSON Feed markup)")
    root = _ROOT.search(stripped)
    prolog = stripped[: root.start()] if root else stripped
    if _ENTITY_DECL.search(prolog):
        _refuse_entities()
    body = _repair(_XML_DECL.sub("", prolog).lstrip() + stripped[len(prolog):])
    name, error = _check(body)
    return Document(Kind.XML, body, name, error)
