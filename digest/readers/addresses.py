"""Email addresses: validation and normalization (email-validator, no DNS), the SMTP (ASCII)
form of an IDN address, and the keyed hash that suppression entries keep instead of the address.
"""

from __future__ import annotations

import hashlib
import hmac

from email_validator import EmailNotValidError, validate_email

from digest.config.errors import InvalidInput

__all__ = ["email_hash", "normalize_email", "smtp_address"]


def normalize_email(raw: str) -> str:
    """Return the canonical form of ``raw``: trimmed, lower-cased, IDN domain in Unicode.

    Letter case is folded in the local part too: mailbox providers treat it case-insensitively and
    readers expect ``Ana@X.ro`` and ``ana@x.ro`` to be one subscription.
    """
    candidate = raw.strip()
    if not candidate:
        raise InvalidInput("The email address is empty.", "give an address like ana@example.ro")
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"{candidate!r} is not a valid email address: {exc}",
                           "check the address for typos (e.g. a missing @ or domain)") from None
    return result.normalized.lower()


def smtp_address(email: str) -> str:
    """The ASCII form used on the wire (``ion@bücher.de`` -> ``ion@xn--bcher-kva.de``)."""
    local, _, domain = email.rpartition("@")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return email


def email_hash(key: bytes, normalized_email: str) -> str:
    """Keyed hash of an address already passed through ``normalize_email`` (not repeated here:
    it is the costly part of a bulk import); reveals nothing without the installation's key."""
    return hmac.new(key, normalized_email.encode(), hashlib.sha256).hexdigest()
