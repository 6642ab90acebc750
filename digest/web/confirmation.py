"""The double opt-in confirmation email: one transactional message to one reader.

``build_confirmation`` is pure (settings + plain values -> message bytes): HTML and text parts from
``templates/email/confirm.html.j2`` and ``confirm.txt.j2``, UTF-8 quoted-printable, RFC 2047
display names and Subject, a fresh Message-ID, 7-bit clean. It is not a bulk message, so it has no
List-Unsubscribe/List-Id: the reader is not on any list until they click. ``send_confirmation``
signs the link and sends the bytes with ``digest.smtp.send_one``.
"""

from __future__ import annotations

import datetime as dt
import email.policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from digest.config.settings import Settings
from digest.readers.addresses import smtp_address
from digest.render.environment import make_environment
from digest.render.i18n import language
from digest.render.tokens import CONFIRM_MAX_AGE_DAYS, Purpose, make_token
from digest.render.values import wrap
from digest.transport.connection import send_one

__all__ = ["build_confirmation", "confirm_url", "send_confirmation"]

# SMTP policy (CRLF) with room for long headers: Python folds with encoded-words otherwise.
_POLICY = email.policy.SMTP.clone(max_line_length=998)
_BODY_POLICY = email.policy.SMTP


def confirm_url(settings: Settings, subscriber_id: int, now: dt.datetime) -> str:
    """``{base_url}/confirm/{token}``: the token expires ``CONFIRM_MAX_AGE_DAYS`` after ``now``."""
    token = make_token(settings.require_secret_key(), Purpose.CONFIRM, subscriber_id, now=now)
    return f"{settings.base_url.rstrip('/')}/confirm/{token}"


def _recipient(email: str, name: str | None) -> Address:
    # ASCII envelope form of an IDN domain; a non-ASCII local part would need SMTPUTF8, which the
    # sign-up form refuses up front (Address raises here).
    return Address(display_name=name or "", addr_spec=smtp_address(email))


def _sender(settings: Settings) -> Address:
    sender = settings.from_address
    return Address(display_name=sender.display_name, addr_spec=smtp_address(sender.addr_spec))


def build_confirmation(settings: Settings, *, email: str, name: str | None, url: str,
                       now: dt.datetime, locale: str | None = None) -> bytes:
    """The confirmation message for ``email`` with the confirmation link ``url``, in the
    reader's language (``locale``, else ``DIGEST_LOCALE``)."""
    lang = language(locale, settings.locale)
    env = make_environment(settings, "email", lang)
    env.filters["wrap"] = wrap
    subject = lang.gettext("Confirm your subscription to %(site)s", site=settings.site_name)
    context = {
        "subject": subject,
        "site_name": settings.site_name, "site_url": settings.site_url, "name": name or "",
        "confirm_url": url, "privacy_url": settings.privacy_url,
        "postal_address": settings.postal_address, "expires_days": CONFIRM_MAX_AGE_DAYS,
    }
    text = env.get_template("confirm.txt.j2").render(**context)
    html = env.get_template("confirm.html.j2").render(**context)

    sender = _sender(settings)
    # Bodies are encoded under the policy the message is built with: the standard 78, so
    # quoted-printable lines stay within 76 (SpamAssassin scores longer ones:
    # MIME_QP_LONG_LINE). Only the serialisation uses the long-line policy, for the headers.
    msg = EmailMessage(policy=_BODY_POLICY)
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = _recipient(email, name)
    if settings.reply_to:
        msg["Reply-To"] = settings.reply_to
    msg["Date"] = format_datetime(now.astimezone(dt.UTC))
    msg["Message-ID"] = make_msgid("confirm", domain=sender.domain or "localhost")
    # Tells auto-responders (vacation replies) not to answer a machine-sent message (RFC 3834).
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    for part in msg.iter_parts():
        del part["MIME-Version"]  # only the top level carries it
    return msg.as_bytes(policy=_POLICY)


async def send_confirmation(settings: Settings, *, subscriber_id: int, email: str,
                            name: str | None, now: dt.datetime,
                            locale: str | None = None) -> str:
    """Build and send the confirmation for one subscriber; return the server's reply."""
    data = build_confirmation(settings, email=email, name=name,
                              url=confirm_url(settings, subscriber_id, now), now=now,
                              locale=locale)
    return await send_one(settings, smtp_address(settings.from_address.addr_spec),
                          smtp_address(email), data)
