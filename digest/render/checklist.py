"""The standards checklist of DESIGN.md, run on the exact bytes of one message.

One checklist for three users: the tests (``tests/mailcheck.py`` asserts it finds nothing),
``digest check`` (prints every finding) and ``digest send`` (refuses to start when a template
override dropped something a reader or the law needs: the unsubscribe link, List-Unsubscribe,
the postal address, the privacy link -- the findings marked ``required``).

The message is parsed with the stdlib's modern email policy, as a receiving client would.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage
from html.parser import HTMLParser

__all__ = ["DKIM_COVERED", "Finding", "check_message"]

DKIM_COVERED = ("from", "subject", "date", "message-id", "list-unsubscribe",
                "list-unsubscribe-post", "list-id")
_MAX_HTML_BYTES = 100_000
_MAX_WIDTH = 600
_ENCODED_WORD_HEADERS = ("Subject", "From", "To", "Reply-To", "List-Id")
_MEDIA = re.compile(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}")


@dataclass(frozen=True)
class Finding:
    """One failed checklist item. ``required``: a message without it must not be sent."""

    message: str
    required: bool = False

    def __str__(self) -> str:
        return f"{'REQUIRED: ' if self.required else ''}{self.message}"


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


def _width(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


def _check_html(html: str) -> list[str]:
    parsed = _Html()
    parsed.feed(html)
    found: list[str] = []
    names = [t for t, _ in parsed.tags]
    found += [f"HTML has a <{t}>" for t in ("script", "form") if t in names]
    tables = [a for t, a in parsed.tags if t == "table"]
    if not tables or any(a.get("role") != "presentation" for a in tables):
        found.append('every layout <table> needs role="presentation"')
    for tag, attrs in parsed.tags:
        if tag == "img" and ("alt" not in attrs or not attrs.get("width")
                             or not attrs.get("height")):
            found.append(f"<img> without alt, width or height: {attrs.get('src')}")
        if tag in ("img", "table") and _width(attrs.get("width")) > _MAX_WIDTH:
            found.append(f"<{tag}> wider than {_MAX_WIDTH} px")
    for css in parsed.styles:
        outside = _MEDIA.sub("", css).strip()
        if outside:
            found.append(f"CSS not inlined (left in <style>): {outside[:80]!r}")
    if not any(a.get("style") for _, a in parsed.tags):
        found.append("no inline style at all: CSS was not inlined")
    if len(html.encode()) >= _MAX_HTML_BYTES:
        found.append(f"HTML part is {len(html.encode())} bytes (limit {_MAX_HTML_BYTES})")
    return found


def _check_raw(data: bytes, head: str) -> list[str]:
    found: list[str] = []
    if any(b >= 128 for b in data):
        found.append("raw message is not 7-bit clean")
    if b"\n" in data.replace(b"\r\n", b""):
        found.append("bare LF in message")
    if max(len(line) for line in data.split(b"\r\n")) > 998:
        found.append("a line is over 998 octets")
    unfolded = re.sub(r"\r\n[ \t]", " ", head)
    for line in unfolded.split("\r\n"):
        name, _, value = line.partition(": ")
        if "=?" in value and (name not in _ENCODED_WORD_HEADERS
                              or ("<" in value and "=?" in value[value.rfind("<"):])):
            found.append(f"encoded-word where none may be: {line[:80]}")
    return found


def _check_headers(message: EmailMessage, head: str) -> list[Finding]:
    found: list[Finding] = []
    for name in ("Date", "From", "To", "Subject", "Message-ID", "MIME-Version"):
        if len(message.get_all(name, [])) != 1:
            found.append(Finding(f"needs exactly one {name} header"))
    if not re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+\.[^<>@\s]+>", str(message["Message-ID"])):
        found.append(Finding(f"Message-ID is not <unique@domain>: {message['Message-ID']}"))
    for name in ("Subject", "From", "To"):
        raw = re.search(rf"^{name}: ([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head, re.M)
        if raw is not None and not str(message[name]).isascii() \
                and "=?utf-8?" not in raw.group(1).lower():
            found.append(Finding(f"{name} is not RFC 2047 encoded"))
    lu = re.search(r"^List-Unsubscribe: ([^\r\n]*)", head, re.M)
    if lu is None:
        found.append(Finding("no List-Unsubscribe header", required=True))
    else:
        if head[lu.end():].startswith(("\r\n ", "\r\n\t")):
            found.append(Finding("List-Unsubscribe is folded", required=True))
        if not re.fullmatch(r"<https://[^\s<>]+>", lu.group(1)):
            # Not required: a plain-http DIGEST_BASE_URL (a local demo) is a setting to fix,
            # not a template that lost the header.
            found.append(Finding(f"List-Unsubscribe is not <https://...>: {lu.group(1)[:80]}"))
    if message["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click":
        found.append(Finding("List-Unsubscribe-Post is not List-Unsubscribe=One-Click",
                             required=True))
    if not re.fullmatch(r".+ <[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+>", str(message["List-Id"])):
        found.append(Finding(f"List-Id is not 'Name <label.domain>': {message['List-Id']}"))
    return found


def _check_dkim(message: EmailMessage) -> list[Finding]:
    signature = message["DKIM-Signature"]
    if signature is None:
        return [Finding("DKIM is configured but the message is not signed")]
    tags = dict(p.strip().split("=", 1) for p in re.sub(r"\s+", "", str(signature)).split(";")
                if "=" in p)
    signed = {h.lower() for h in tags.get("h", "").split(":")}
    return [Finding(f"DKIM does not cover {h}") for h in DKIM_COVERED if h not in signed]


def _required_links(text: str, html: str | None, unsubscribe_url: str | None,
                    privacy_url: str | None, postal_address: str | None) -> list[Finding]:
    found: list[Finding] = []
    flat_text = " ".join(text.split())
    flat_html = " ".join((html or "").replace("&amp;", "&").split())
    for what, value in (("unsubscribe link", unsubscribe_url), ("privacy link", privacy_url),
                        ("postal address", postal_address)):
        if not value:
            continue
        value = " ".join(value.split())
        if value not in flat_text:
            found.append(Finding(f"the text part has no {what}", required=True))
        if html is not None and value not in flat_html:
            found.append(Finding(f"the HTML part has no {what}", required=True))
    return found


def check_message(data: bytes, *, html_expected: bool = True, unsubscribe_url: str | None = None,
                  privacy_url: str | None = None, postal_address: str | None = None,
                  dkim: bool = False) -> list[Finding]:
    """Every checklist item ``data`` fails (empty: all good). Pass the values the message must
    show (the reader's unsubscribe URL, the privacy URL, the postal address) to check them."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
    found = [Finding(m) for m in _check_raw(data, head)]
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    found += _check_headers(message, head)
    lu = re.search(r"^List-Unsubscribe: <([^\r\n>]*)>", head, re.M)
    if unsubscribe_url is not None and lu is not None and lu.group(1) != unsubscribe_url:
        found.append(Finding("List-Unsubscribe is not the reader's unsubscribe URL", True))
    if html_expected and message.get_content_type() != "multipart/alternative":
        return [*found, Finding(f"expected multipart/alternative, got "
                                f"{message.get_content_type()}")]
    parts = list(message.iter_parts()) if html_expected else [message]
    kinds = [p.get_content_type() for p in parts]
    if kinds != (["text/plain", "text/html"] if html_expected else ["text/plain"]):
        return [*found, Finding(f"parts are {kinds}: text/plain first, text/html last")]
    for part in parts:
        if part.get_content_charset() != "utf-8" or part["Content-Transfer-Encoding"] not in (
                "quoted-printable", "base64"):
            found.append(Finding(f"{part.get_content_type()} is not UTF-8 in QP or base64"))
    text = str(parts[0].get_content())
    html = str(parts[1].get_content()) if html_expected else None
    if html is not None:
        found += [Finding(m) for m in _check_html(html)]
        for href in re.findall(r'href="([^"]+)"', html):
            url = href.replace("&amp;", "&")
            if url not in text:
                found.append(Finding(f"link missing from the text part: {url[:100]}"))
    long_lines = [ln for ln in text.splitlines() if len(ln) > 78 and "://" not in ln]
    if long_lines:
        found.append(Finding(f"text line over 78 characters: {long_lines[0][:60]}..."))
    found += _required_links(text, html, unsubscribe_url, privacy_url, postal_address)
    if dkim:
        found += _check_dkim(message)
    return found
