"""What a message is called: its Message-ID, the same on every resend, and the installation tag
that keeps ids unique across installations and rebuilt databases.
"""

from __future__ import annotations

import hashlib
import hmac

from digest.render.mime import idna_domain

__all__ = ["installation_tag", "message_id_for"]


def message_id_for(edition_id: int, subscriber_id: int, domain: str, installation: str = "") -> str:
    """The Message-ID of one reader's copy of one edition: the same on every resend.

    ``installation`` (derived from the secret key) keeps ids unique across installations and
    across a database rebuilt from scratch, whose edition and subscriber ids start at 1 again:
    providers drop a message whose Message-ID they have already seen.
    """
    tag = f".{installation}" if installation else ""
    return f"<digest.{edition_id}.{subscriber_id}{tag}@{idna_domain(domain)}>"


def installation_tag(secret: str) -> str:
    """A short, stable tag of this installation that reveals nothing about the secret."""
    return hmac.new(secret.encode(), b"digest-message-id", hashlib.sha256).hexdigest()[:12]
