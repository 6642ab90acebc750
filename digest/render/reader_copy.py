"""Each reader's copy of a rendered digest: ``RenderedDigest.message_for(reader)``.

The cheap step of rendering (``render.message`` does the expensive one once per distinct
digest): two tokens, the To, Message-ID and List-Unsubscribe headers, the reader's values put
into the pre-encoded bodies -- each value quoted-printable encoded once and shared by both
parts -- and DKIM when configured. The result (``Outgoing.wire``) is already in SMTP DATA form.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from digest.compose import Digest, ReaderView
from digest.config.errors import InvalidInput
from digest.readers.addresses import smtp_address
from digest.render.html_text import escaped_values
from digest.render.identity import message_id_for
from digest.render.mime import (
    END_OF_DATA,
    QpTemplate,
    encoded_value,
    format_mailbox,
    from_data_form,
    header_line,
)
from digest.render.tokens import Purpose

__all__ = ["Outgoing", "RenderedDigest"]

Encoded = Mapping[str, tuple[bytes, bytes]]  # per-reader values made by encoded_value
_HTML_SPECIAL = re.compile("[&<>\"']")  # what html.escape(quote=True) changes
_TEXT_PART = (b'Content-Type: text/plain; charset="utf-8"\r\n'
              b"Content-Transfer-Encoding: quoted-printable\r\n")
_HTML_PART = (b'Content-Type: text/html; charset="utf-8"\r\n'
              b"Content-Transfer-Encoding: quoted-printable\r\n")


class Renderer(Protocol):
    """What a reader's copy takes from ``render.message.Renderer``: what all digests share."""

    domain: str
    installation: str

    @property
    def signs(self) -> bool: ...
    def headers(self, digest: Digest, subject: str) -> tuple[bytes, bytes]: ...
    def link(self, purpose: Purpose, subscriber_id: int) -> str: ...
    def signature(self, data: bytes) -> bytes: ...
    def envelope_sender(self, edition_id: int, subscriber_id: int) -> str: ...


@dataclass(frozen=True)
class Outgoing:
    """One message ready for SMTP."""

    sender: str  # envelope MAIL FROM, ASCII (per message: VERP may make it the reader's own)
    recipient: str  # envelope RCPT TO, ASCII
    message_id: str  # "<...@domain>", deterministic per (edition, subscriber)
    wire: bytes  # SMTP DATA form: CRLF line endings, dot-stuffed, ending with ".\r\n"

    @property
    def data(self) -> bytes:
        """The message as the receiver stores it (CRLF line endings), e.g. for a preview."""
        return from_data_form(self.wire)



class RenderedDigest:
    """A digest rendered once; ``message_for`` makes each reader's copy."""

    def __init__(self, renderer: Renderer, digest: Digest, subject: str, text: QpTemplate,
                 html_body: QpTemplate | None) -> None:
        self.subject = subject
        self.digest = digest
        self._renderer = renderer
        self._text = text
        self._html = html_body
        self._before_to, self._after_to = renderer.headers(digest, subject)
        if html_body is None:
            self._content = _TEXT_PART
            self._parts = None
        else:
            # Deterministic per digest; "==" never occurs in quoted-printable text.
            seed = hashlib.sha256(repr(digest).encode()).hexdigest()[:24]
            boundary = f"==digest-{seed}=="
            self._content = (f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'
                             .encode("ascii"))
            self._parts = (
                f"--{boundary}\r\n".encode("ascii") + _TEXT_PART + b"\r\n",
                f"\r\n--{boundary}\r\n".encode("ascii") + _HTML_PART + b"\r\n",
                f"\r\n--{boundary}--\r\n".encode("ascii"),
            )

    def values(self, reader: ReaderView) -> dict[str, str]:
        """The reader's own values (plain text), as put into the bodies."""
        link = self._renderer.link
        return {
            "unsubscribe_url": link(Purpose.UNSUBSCRIBE, reader.subscriber_id),
            "preferences_url": link(Purpose.PREFERENCES, reader.subscriber_id),
            "reader_email": reader.email,
        }

    def text_for(self, reader: ReaderView) -> str:
        """The plain-text body this reader gets, decoded."""
        return self._text.text_for(self.values(reader))

    def html_for(self, reader: ReaderView) -> str | None:
        """The HTML body this reader gets, decoded (None for a plain-text-only reader)."""
        if self._html is None:
            return None
        return self._html.text_for(escaped_values(self.values(reader)))

    def message_for(self, reader: ReaderView) -> Outgoing:
        renderer = self._renderer
        values = self.values(reader)
        recipient = smtp_address(reader.email)
        if not recipient.isascii():
            raise InvalidInput(
                f"{reader.email} has a non-ASCII local part, which needs SMTPUTF8.",
                "this sender writes 7-bit messages; ask the reader for another address")
        message_id = message_id_for(self.digest.edition.id, reader.subscriber_id,
                                    renderer.domain, renderer.installation)
        head = b"".join((
            self._before_to,
            header_line("To", format_mailbox(reader.name, recipient)),
            header_line("Message-ID", message_id),
            self._after_to,
            header_line("List-Unsubscribe", f"<{values['unsubscribe_url']}>"),
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            b"Precedence: bulk\r\nAuto-Submitted: auto-generated\r\n",
            self._content,
        ))
        # Each value encoded once for both parts (the HTML part's own where escaping changes
        # it: an address with & or ', say).
        text = {name: encoded_value(value) for name, value in values.items()}
        html = text
        if self._html is not None and _HTML_SPECIAL.search("".join(values.values())):
            html = {name: text[name] if value == values[name] else encoded_value(value)
                    for name, value in escaped_values(values).items()}
        wire = b"".join((head, self._body(text, html, wire=True), END_OF_DATA))  # headers
        if renderer.signs:                                                 # need no stuffing
            # DKIM signs what the receiver stores
            data = head + self._body(text, html, wire=False)
            wire = renderer.signature(data) + wire
        sender = renderer.envelope_sender(self.digest.edition.id, reader.subscriber_id)
        return Outgoing(sender, recipient, message_id, wire)

    def _body(self, text: Encoded, html: Encoded, *, wire: bool) -> bytes:
        """The blank line and the body; ``wire``: dot-stuffed for SMTP DATA."""
        if self._parts is None or self._html is None:
            return b"\r\n" + self._text.fill_encoded(text, wire=wire)
        first, second, end = self._parts
        return b"".join((b"\r\n", first, self._text.fill_encoded(text, wire=wire), second,
                         self._html.fill_encoded(html, wire=wire), end))
