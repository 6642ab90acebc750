"""Render (pure): a ``Digest`` -> the exact bytes of each reader's email.

Two steps, because a digest goes to many readers:

- ``Renderer.render(digest)`` -- the expensive part, once per distinct digest (a digest carries
  the reader's language, so once per language too): both templates in that language,
  CSS inlining, quoted-printable encoding and every header that is the same for all readers.
  Per-reader values (unsubscribe and preferences links, the reader's address) are rendered as
  unguessable markers and the encoded bodies are split at them (see ``digest.render.mime``).
- ``RenderedDigest.message_for(reader)`` (``render.reader_copy``) -- the cheap part: two
  tokens, the To, Message-ID and List-Unsubscribe headers, the values put into the pre-encoded
  bodies, DKIM when configured. The result (``Outgoing.wire``) is already in SMTP DATA form
  -- CRLF, dot-stuffed, ending with the end-of-data line -- because the segments were stuffed
  once per digest: the transport writes it as it is, with no pass over the message
  (``Outgoing.data`` gives the plain bytes).

The Date header is the edition's cutoff (when it was planned), not the send time: a message
that is resent after a crash is then byte-identical, same Message-ID, same DKIM signature.
No database, network or clock is touched here.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import replace
from email.utils import format_datetime, parseaddr

import css_inline
import jinja2

from digest.compose import Digest
from digest.config.settings import Settings
from digest.render.dkim import DkimSigner
from digest.render.environment import make_environment
from digest.render.html_text import escape_attribute_brackets
from digest.render.i18n import Language, language
from digest.render.identity import installation_tag
from digest.render.mime import (
    QpTemplate,
    ascii_url,
    encode_phrase,
    format_mailbox,
    header_line,
    idna_domain,
)
from digest.render.reader_copy import Outgoing, RenderedDigest
from digest.render.tokens import Purpose, make_bounce_token, make_token
from digest.render.values import (
    article_items,
    dateline,
    list_id,
    long_date,
    preheader,
    subject_text,
    wrap,
)

__all__ = ["Outgoing", "RenderedDigest", "Renderer"]

_READER_VALUES = ("unsubscribe_url", "preferences_url", "reader_email")
_CACHE_SIZE = 32


def _mailbox_header(raw: str) -> str:
    name, addr = parseaddr(raw)
    local, _, domain = addr.rpartition("@")
    return format_mailbox(name, f"{local}@{idna_domain(domain)}")


class Renderer:
    """Holds what every digest shares: templates, CSS inliner, DKIM key, fixed headers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._secret = settings.require_secret_key()
        self.installation = installation_tag(self._secret)
        self._templates: dict[str, tuple[jinja2.Template, jinja2.Template]] = {}
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
        self._signer = DkimSigner.from_settings(settings)
        # Random per process, so text inside an article can never impersonate a marker.
        nonce = secrets.token_hex(8)
        self._markers = {name: f"@@{nonce}:{name}@@" for name in _READER_VALUES}
        self.base_url = ascii_url(settings.base_url.rstrip("/"))
        self._link_base = {purpose: f"{self.base_url}/{purpose.value}/" for purpose in Purpose}
        sender = settings.from_address
        self.domain = idna_domain(sender.domain)
        self.sender = f"{sender.username}@{self.domain}"
        self._from = format_mailbox(sender.display_name, self.sender)
        # DIGEST_RETURN_PATH: a VERP envelope sender per delivery, split once here so each
        # message only adds its token.
        self._verp: tuple[str, str] | None = None
        if settings.feedback.return_path:
            local, _, domain = settings.feedback.return_path.rpartition("@")
            self._verp = (f"{local}+", f"@{idna_domain(domain)}")
        self._reply_to = _mailbox_header(settings.reply_to) if settings.reply_to else None
        self._cache: OrderedDict[Digest, RenderedDigest] = OrderedDict()

    def envelope_sender(self, edition_id: int, subscriber_id: int) -> str:
        """MAIL FROM: ``bounces+TOKEN@domain`` with a return path, else DIGEST_FROM's address."""
        if self._verp is None:
            return self.sender
        head, tail = self._verp
        return head + make_bounce_token(self._secret, edition_id, subscriber_id) + tail

    def link(self, purpose: Purpose, subscriber_id: int) -> str:
        """The reader's unsubscribe or preferences page (these tokens never expire)."""
        return self._link_base[purpose] + make_token(self._secret, purpose, subscriber_id)

    def templates(self, lang: Language) -> tuple[jinja2.Template, jinja2.Template]:
        """The (HTML, text) templates in ``lang``, loaded once per language."""
        found = self._templates.get(lang.code)
        if found is None:
            env = make_environment(self.settings, "email", lang)
            env.filters["wrap"] = wrap
            found = env.get_template("digest.html.j2"), env.get_template("digest.txt.j2")
            self._templates[lang.code] = found
        return found

    def render(self, digest: Digest) -> RenderedDigest:
        """Render ``digest`` once; a small cache returns the same object for an equal digest."""
        lang = language(digest.locale, self.settings.locale)
        if digest.locale != lang.code:  # ro-RO, ro_RO and ro render (and cache) as one
            digest = replace(digest, locale=lang.code)
        cached = self._cache.get(digest)
        if cached is not None:
            self._cache.move_to_end(digest)
            return cached
        rendered = self._render(digest, lang)
        self._cache[digest] = rendered
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return rendered

    def _render(self, digest: Digest, lang: Language) -> RenderedDigest:
        s = self.settings
        edition = digest.edition
        items = article_items(digest, s.timezone, s.site_url, lang)
        subject = subject_text(s.site_name, digest, lang)
        html_template, text_template = self.templates(lang)
        context = {
            "site_name": s.site_name,
            "site_url": ascii_url(s.site_url),
            "edition": edition,
            "date_text": long_date(edition.date, lang),
            "dateline": dateline(edition.frequency, lang),
            "articles": items,
            "subject": subject,
            "preheader": preheader(items, lang),
            "archive_url": f"{self.base_url}/archive/{edition.id}",
            "privacy_url": ascii_url(s.privacy_url),
            "postal_address": s.postal_address,
            **self._markers,
        }
        text = QpTemplate(text_template.render(context), self._markers)
        html_body = None
        if not digest.plain_text_only:
            inlined = self._inliner.inline(html_template.render(context))
            html_body = QpTemplate(escape_attribute_brackets(inlined), self._markers)
        return RenderedDigest(self, digest, subject, text, html_body)

    def headers(self, digest: Digest, subject: str) -> tuple[bytes, bytes]:
        """The fixed headers around the per-reader ones: (before To, after To)."""
        description, label = list_id(
            self.settings.site_name, self.settings.list_id or self.settings.from_address.domain,
            digest.edition.frequency)
        cutoff = digest.edition.cutoff.astimezone(self.settings.timezone)
        before = (header_line("Date", format_datetime(cutoff))
                  + header_line("From", self._from))
        after = (header_line("Subject", encode_phrase(subject, quote_specials=False))
                 + b"MIME-Version: 1.0\r\n"
                 + (header_line("Reply-To", self._reply_to) if self._reply_to else b"")
                 + header_line("List-Id", f"{encode_phrase(description)} <{label}>")
                 + header_line("Feedback-ID", self.feedback_id(digest, label)))
        return before, after

    def feedback_id(self, digest: Digest, list_label: str) -> str:
        """Gmail's Feedback-ID, ``a:b:c:SenderId`` (edition:frequency:list:sender): complaint
        rates per edition, per frequency and per list in Postmaster Tools. No colon may occur
        inside a field, so the list label (dots only) and the domain are safe."""
        edition = digest.edition
        return f"{edition.id}:{edition.frequency.value}:{list_label}:{self.domain}"

    @property
    def signs(self) -> bool:
        return self._signer is not None

    def sign(self, data: bytes) -> bytes:
        if self._signer is None:
            return data
        return self._signer.sign(data, has_reply_to=self._reply_to is not None)

    def signature(self, data: bytes) -> bytes:
        """The DKIM-Signature header field for ``data`` (empty when DKIM is off)."""
        return self.sign(data)[:-len(data)] if self._signer is not None else b""
