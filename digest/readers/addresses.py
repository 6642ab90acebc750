"""What a reader record may hold: the one address rule for every way in (CLI, CSV, web), the
SMTP (ASCII) form of an IDN address, clean text fields, and the keyed hash that suppression
entries keep instead of the address.

``accept_address`` is the gate for a NEW address, whatever the way in: valid syntax
(email-validator, no DNS), a local part of at most 64 octets (RFC 5321 4.5.3.1.1) in ASCII --
the sender speaks plain SMTP, without SMTPUTF8, so ``ștefan@...`` could never be delivered --
and a domain that can receive mail from the internet. Special-use and reserved names (``.test``,
``.example``, ``.invalid``, ``.internal``, ``localhost``, ...) are refused unless the operator
allows them for staging (``DIGEST_ALLOW_RESERVED_DOMAINS``). ``normalize_email`` only gives the
canonical form, for looking up addresses that are already stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from email_validator import EmailNotValidError, validate_email

from digest.config.errors import InvalidInput

__all__ = ["MAX_LOCAL_PART", "RESERVED_SUFFIXES", "accept_address", "clean_text", "email_hash",
           "normalize_email", "smtp_address"]

MAX_LOCAL_PART = 64  # octets, RFC 5321 4.5.3.1.1
MAX_ADDRESS = 254  # octets: what fits in a RCPT TO path (RFC 5321 4.5.3.1.3, less the <>)
# RFC 2606 and 6761 names, .local (mDNS), .onion, .arpa and ICANN's private-use .internal:
# none of them is reachable on the public internet, so a reader there never gets a digest.
RESERVED_SUFFIXES = ("test", "example", "invalid", "localhost", "local", "internal", "onion",
                     "arpa")
# A stand-in suffix email-validator accepts: a reserved name is swapped for it so that the rest
# of the address is still checked when reserved names are allowed.
_STAND_IN = "reserved-name.example.com"
# Unicode category Cc: C0, DEL and C1. Line breaks and tabs become a space, the rest goes.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACE_LIKE = frozenset("\t\n\v\f\r\x85")
_HINT = "check the address for typos (e.g. a missing @ or domain)"


def _validate(candidate: str) -> str:
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"{candidate!r} is not a valid email address: {exc}", _HINT) from None
    return str(result.normalized).lower()


def _reserved_suffix(domain: str) -> str | None:
    labels = domain.lower().rstrip(".").split(".")
    return labels[-1] if labels[-1] in RESERVED_SUFFIXES else None


def normalize_email(raw: str) -> str:
    """Return the canonical form of ``raw``: trimmed, lower-cased, IDN domain in Unicode.

    Letter case is folded in the local part too: mailbox providers treat it case-insensitively and
    readers expect ``Ana@X.ro`` and ``ana@x.ro`` to be one subscription. Reserved domains are
    accepted here (an address stored on a staging site must still be found); new addresses go
    through ``accept_address``.
    """
    candidate = raw.strip()
    if not candidate:
        raise InvalidInput("The email address is empty.", "give an address like ana@example.ro")
    local, at, domain = candidate.rpartition("@")
    suffix = _reserved_suffix(domain) if at else None
    if suffix is None:
        return _validate(candidate)
    # Check everything but the reserved name, then put it back.
    head = domain.rstrip(".")[: -len(suffix)].rstrip(".")
    stand_in = _validate(f"{local}@{head + '.' if head else ''}{_STAND_IN}")
    return stand_in[: -len(_STAND_IN)] + suffix


def accept_address(raw: str, *, allow_reserved: bool = False) -> str:
    """The one rule for a new reader's address (CLI, CSV import, web sign-up): its canonical
    form, or ``InvalidInput`` saying what is wrong with it."""
    address = normalize_email(raw)
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise InvalidInput(
            f"{address!r} has non-Latin letters before the @, which plain SMTP cannot deliver.",
            "use the reader's other address (letters before the @ must be a-z, 0-9 or . _ + -)")
    if len(local) > MAX_LOCAL_PART:
        raise InvalidInput(
            f"{address!r} is not a valid email address: the part before the @ has "
            f"{len(local)} characters, more than {MAX_LOCAL_PART}.", _HINT)
    if len(address if address.isascii() else smtp_address(address)) > MAX_ADDRESS:
        raise InvalidInput(f"{address[:40]!r}... is longer than {MAX_ADDRESS} characters.", _HINT)
    if not allow_reserved and _reserved_suffix(domain) is not None:
        raise InvalidInput(
            f"{address!r} is at a special-use or reserved name ({domain}) that cannot receive "
            f"mail from the internet (a staging site may allow it: "
            f"DIGEST_ALLOW_RESERVED_DOMAINS=true).",
            "use a real address; for a staging site set DIGEST_ALLOW_RESERVED_DOMAINS=true")
    return address


def clean_text(raw: str | None) -> str | None:
    """A text field as stored: control characters (NUL included, which PostgreSQL refuses and
    SQLite would keep) become a space when they are whitespace and go otherwise; trimmed; None
    when nothing is left. The same on every database, whatever the way in."""
    if raw is None:
        return None
    text = _CONTROL.sub(lambda m: " " if m.group() in _SPACE_LIKE else "", raw)
    return text.strip() or None


def smtp_address(email: str) -> str:
    """The ASCII form used on the wire (``ion@bücher.de`` -> ``ion@xn--bcher-kva.de``)."""
    if email.isascii():  # the idna codec gives an ASCII domain back as it is
        return email
    local, _, domain = email.rpartition("@")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return email


def email_hash(key: bytes, normalized_email: str) -> str:
    """Keyed hash of an address already passed through ``normalize_email`` (not repeated here:
    it is the costly part of a bulk import); reveals nothing without the installation's key."""
    return hmac.new(key, normalized_email.encode(), hashlib.sha256).hexdigest()
