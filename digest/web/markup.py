"""Small template helpers for the reader pages: bits of markup that sit inside a translated
sentence, and the names of states a page may show.

A sentence such as "Stop sending the digest to <strong>ana@…</strong>?" is one catalog entry
with a ``%(address)s`` placeholder, so a translator can move the address where their language
wants it; the markup goes in as an already-escaped value (Jinja's new-style gettext escapes
plain values and keeps ``Markup`` ones).
"""

from __future__ import annotations

from markupsafe import Markup

from digest.render.i18n import N_
from digest.store.models import SubscriberStatus

__all__ = ["status_name", "strong", "strong_address"]

# Shown next to the address on the preferences page; translated in the template with _().
_STATUS_NAMES = {
    SubscriberStatus.PENDING: N_("not confirmed yet"),
    SubscriberStatus.ACTIVE: N_("subscribed"),
    SubscriberStatus.UNSUBSCRIBED: N_("unsubscribed"),
    SubscriberStatus.BOUNCED: N_("emails bounced"),
    SubscriberStatus.COMPLAINED: N_("marked as spam"),
}


def strong(text: str) -> Markup:
    """``<strong>text</strong>``, ``text`` escaped."""
    return Markup("<strong>%s</strong>") % text


def strong_address(email: str) -> Markup:
    """The reader's address as the pages show it (never broken across lines oddly)."""
    return Markup('<strong class="address">%s</strong>') % email


def status_name(status: str) -> str:
    """The English name (a catalog msgid) of a subscriber status."""
    return _STATUS_NAMES.get(SubscriberStatus(status), status)
