"""Fast, hand-built MIME pieces for bulk mail: header encoding and pre-encoded bodies.

``EmailMessage.as_bytes()`` costs milliseconds per message; a digest goes to every reader with
only a few per-reader values (links, address) changed. So a body is quoted-printable encoded
once, in segments split at per-reader markers, and each message only encodes its few short
values and joins bytes. The result is byte-for-byte valid QP: each segment and each value ends
with a soft line break (``=`` CRLF), which decoders remove, so the decoded text is exactly the
rendered text with the values put in.

Headers are written by hand, so the rules are kept here, in one place:
- non-ASCII phrases (Subject, display names, List-Id description) become RFC 2047 ``B``
  encoded-words of at most 64 characters each, folded onto continuation lines, never splitting
  a character;
- an address or a URL inside ``<...>`` is never encoded or folded (it must be ASCII already);
- control characters in untrusted text (a reader's name) are blanked, so no header injection.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Mapping
from urllib.parse import quote, urlsplit, urlunsplit

from digest.config.errors import InvalidInput

__all__ = [
    "QpTemplate",
    "ascii_url",
    "clean_header_text",
    "dot_stuff",
    "encode_phrase",
    "encoded_value",
    "format_mailbox",
    "from_data_form",
    "header_line",
    "idna_domain",
    "qp_encode",
    "to_data_form",
]

CRLF = b"\r\n"
_SOFT_BREAK = b"=\r\n"
END_OF_DATA = b".\r\n"  # after the message's last CRLF: the SMTP end-of-data line
# 39 bytes of UTF-8 -> 52 base64 characters -> a 64-character encoded word; with a header name
# of up to ~12 characters in front, the first line stays within the recommended 78.
_WORD_BYTES = 39
# RFC 5322 atext plus the space between words: such a phrase needs no quoting.
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]+")


def clean_header_text(text: str) -> str:
    """Collapse whitespace and blank control characters (CR/LF would inject headers)."""
    if text.isprintable():  # the common case: no control characters at all
        return " ".join(text.split())
    cleaned = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in text)
    return " ".join(cleaned.split())


def _encoded_words(text: str) -> list[str]:
    if len(text.encode("utf-8")) <= _WORD_BYTES:  # a typical name: one word
        return [f"=?utf-8?b?{base64.b64encode(text.encode()).decode('ascii')}?="]
    words: list[str] = []
    chunk = b""
    for ch in text:
        raw = ch.encode("utf-8")
        if chunk and len(chunk) + len(raw) > _WORD_BYTES:
            words.append(chunk.decode("utf-8"))
            chunk = b""
        chunk += raw
    if chunk:
        words.append(chunk.decode("utf-8"))
    return [f"=?utf-8?b?{base64.b64encode(w.encode()).decode('ascii')}?=" for w in words]


def encode_phrase(text: str, *, quote_specials: bool = True) -> str:
    """``text`` as a header phrase: plain or quoted when ASCII, RFC 2047 words otherwise.

    With ``quote_specials=False`` (unstructured headers such as Subject) ASCII text is kept as
    is. Long encoded text is folded (CRLF + space) between encoded words.
    """
    text = clean_header_text(text)
    if text.isascii():
        if not quote_specials or _ATOM_PHRASE.fullmatch(text):
            return text
        return _quoted(text)
    words = _encoded_words(text)
    if quote_specials and len(words) > 1:
        words = _mixed_phrase(text)
    return "\r\n ".join(words)


def _quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _mixed_phrase(text: str) -> list[str]:
    """A long display name as ASCII words and encoded words taking turns.

    RFC 2047 decoders drop the space between two adjacent encoded words, while CPython's
    address parser (and others) keep one; so a name that needs several encoded words is split
    at its spaces, its ASCII words written as they are, so that no two encoded words meet
    unless a run of non-ASCII words alone is longer than one word. Both kinds of reader then
    show the same name.
    """
    runs: list[tuple[bool, list[str]]] = []  # (ASCII?, words)
    for word in text.split(" "):
        if runs and runs[-1][0] == word.isascii():
            runs[-1][1].append(word)
        else:
            runs.append((word.isascii(), [word]))
    out: list[str] = []
    for is_ascii, words in runs:
        piece = " ".join(words)
        if not is_ascii:
            out += _encoded_words(piece)
        else:
            out.append(piece if _ATOM_PHRASE.fullmatch(piece) else _quoted(piece))
    return out


def idna_domain(domain: str) -> str:
    """The ASCII (punycode) form of a domain; ASCII domains are returned unchanged."""
    if domain.isascii():
        return domain
    return domain.encode("idna").decode("ascii")


def format_mailbox(name: str | None, addr_spec: str) -> str:
    """``Name <addr>`` for a header; ``addr_spec`` must already be ASCII."""
    if not addr_spec.isascii() or any(c in addr_spec for c in "<>\r\n \t"):
        raise InvalidInput(f"{addr_spec!r} cannot be written in a 7-bit header.",
                           "use an address with an ASCII local part and no spaces")
    phrase = encode_phrase(name or "")
    return f"{phrase} <{addr_spec}>" if phrase else addr_spec


def header_line(name: str, value: str) -> bytes:
    """One header field, CRLF-terminated; ``value`` must be ASCII (encode it first)."""
    return f"{name}: {value}\r\n".encode("ascii")


def ascii_url(url: str) -> str:
    """``url`` with an IDN host in punycode and non-ASCII path/query percent-encoded."""
    if url.isascii():
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = idna_domain(host) + (f":{parts.port}" if parts.port else "")
    safe = "/?&=%:@!$'()*+,;~#-._"
    return urlunsplit((parts.scheme, netloc, quote(parts.path, safe=safe),
                       quote(parts.query, safe=safe), quote(parts.fragment, safe=safe)))


def qp_encode(text: str) -> bytes:
    """Quoted-printable UTF-8 with CRLF line breaks and lines of at most 76 characters."""
    # Encode with LF only, then turn every break (hard and soft) into CRLF: binascii picks
    # its line ending from the first line, which would mix endings across segments.
    return binascii.b2a_qp(text.encode("utf-8")).replace(b"\n", CRLF)


def encoded_value(value: str) -> tuple[bytes, bytes]:
    """A per-reader value as ``QpTemplate`` puts it between its chunks: quoted-printable, ending
    with a line break or a soft break (the next chunk starts a line); and the same dot-stuffed
    for SMTP DATA."""
    encoded = qp_encode(value)
    if encoded and not encoded.endswith(CRLF):
        encoded += _SOFT_BREAK
    stuffed = dot_stuff(encoded) if encoded.startswith(b".") or b"\r\n." in encoded else encoded
    return encoded, stuffed


def dot_stuff(piece: bytes) -> bytes:
    """SMTP transparency (RFC 5321 section 4.5.2) for a piece that starts at a line start:
    every line that begins with ``.`` gets a second one. Two C-speed ``bytes`` operations."""
    stuffed = piece.replace(b"\r\n.", b"\r\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


def to_data_form(message: bytes) -> bytes:
    """Any message (LF or CRLF line endings) as SMTP DATA bytes: CRLF, dot-stuffed, ending
    with the end-of-data line. For one-off messages; bulk digests are built in this form."""
    crlf = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", CRLF)
    if not crlf.endswith(CRLF):
        crlf += CRLF
    return dot_stuff(crlf) + END_OF_DATA


def from_data_form(wire: bytes) -> bytes:
    """The message a receiver stores from DATA bytes: the inverse of ``to_data_form`` for a
    CRLF message (off the hot path: previews, dry runs, tests)."""
    body = wire[:-len(END_OF_DATA)] if wire.endswith(END_OF_DATA) else wire
    body = body.replace(b"\r\n..", b"\r\n.")
    return body[1:] if body.startswith(b"..") else body


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


class QpTemplate:
    """A rendered body with per-reader markers, quoted-printable encoded ahead of time.

    ``markers`` maps a value name to the marker string placed in the text when rendering.
    ``fill(values)`` returns the encoded body with each marker replaced by its value;
    ``fill(values, wire=True)`` the same already dot-stuffed for SMTP DATA. Every segment and
    every value starts at a line start (each ends with CRLF or a soft break), so the segments
    are stuffed once here and only the few short values per message are checked.
    """

    def __init__(self, text: str, markers: Mapping[str, str]) -> None:
        text = _normalize_newlines(text)
        if not text.endswith("\n"):  # a body ends with a line break (as the stdlib writes it)
            text += "\n"
        by_marker = {marker: name for name, marker in markers.items()}
        pattern = re.compile("|".join(re.escape(m) for m in by_marker)) if by_marker else None
        self._chunks: list[bytes] = []  # encoded static text, between the values
        self._texts: list[str] = []  # the same static text, decoded
        self._names: list[str] = []  # the value that follows chunk i
        start = 0
        for match in pattern.finditer(text) if pattern else ():
            self._texts.append(text[start:match.start()])
            self._names.append(by_marker[match.group()])
            start = match.end()
        self._texts.append(text[start:])
        self._chunks = [self._static(t) for t in self._texts[:-1]] + [qp_encode(self._texts[-1])]
        self._wire_chunks = [dot_stuff(c) for c in self._chunks]

    @staticmethod
    def _static(text: str) -> bytes:
        encoded = qp_encode(text)
        # A soft break lets the value start on a fresh line, so line lengths stay in bounds.
        return encoded if not encoded or encoded.endswith(CRLF) else encoded + _SOFT_BREAK

    def fill(self, values: Mapping[str, str], *, wire: bool = False) -> bytes:
        return self.fill_encoded({name: encoded_value(v) for name, v in values.items()},
                                 wire=wire)

    def fill_encoded(self, values: Mapping[str, tuple[bytes, bytes]], *, wire: bool) -> bytes:
        """``fill`` with values already made by ``encoded_value`` (a message's two parts share
        them: each value is encoded once per message)."""
        which = 1 if wire else 0
        out = [b""] * (2 * len(self._names) + 1)
        out[::2] = self._wire_chunks if wire else self._chunks  # chunk i, value i, chunk i+1
        out[1::2] = [values[name][which] for name in self._names]
        return b"".join(out)

    def text_for(self, values: Mapping[str, str]) -> str:
        """The decoded text with values put in (what a reader's client shows)."""
        parts: list[str] = []
        for text, name in zip(self._texts, self._names, strict=False):
            parts += (text, values[name])
        parts.append(self._texts[-1])
        return "".join(parts)
