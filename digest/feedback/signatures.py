"""Who may call a webhook: Mailgun's HMAC, SendGrid's ECDSA signature, Postmark's basic auth,
and a replay guard. Pure functions of the request and the configured key; nothing is trusted
before one of them says yes.

- **Mailgun**: ``signature = HMAC-SHA256(signing key, timestamp + token)``, hex. The timestamp
  must be within ``MAX_AGE`` of now and a token is accepted once (``ReplayGuard``).
- **SendGrid** (signed event webhook): ECDSA P-256 / SHA-256 over ``timestamp + raw body``,
  DER signature in base64 (``X-Twilio-Email-Event-Webhook-Signature``), the public key as
  SendGrid shows it (base64 DER SubjectPublicKeyInfo); the same age limit.
- **Postmark** signs nothing: the webhook URL carries basic-auth credentials, and the password
  must be ``DIGEST_WEBHOOK_POSTMARK_TOKEN`` (compared in constant time).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["MAX_AGE", "ReplayGuard", "basic_auth_password", "mailgun_valid", "sendgrid_valid"]

MAX_AGE = 300.0  # seconds: an older signed call is a replay (providers send at once)


def _fresh(timestamp: str, now: float) -> bool:
    try:
        return abs(now - float(timestamp)) <= MAX_AGE
    except ValueError:
        return False


def mailgun_valid(signing_key: str, timestamp: str, token: str, signature: str,
                  now: float | None = None) -> bool:
    """Is this Mailgun signature right and recent?"""
    if not (timestamp and token and signature) or not _fresh(timestamp, now or time.time()):
        return False
    expected = hmac.new(signing_key.encode(), (timestamp + token).encode(),
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def sendgrid_valid(public_key: str, signature: str, timestamp: str, payload: bytes,
                   now: float | None = None) -> bool:
    """Is this SendGrid event-webhook signature right and recent?"""
    if not (signature and timestamp) or not _fresh(timestamp, now or time.time()):
        return False
    try:
        key = serialization.load_der_public_key(base64.b64decode(public_key))
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return False
        key.verify(base64.b64decode(signature), timestamp.encode() + payload,
                   ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def basic_auth_password(authorization: str | None) -> str | None:
    """The password of an ``Authorization: Basic ...`` header, or None."""
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2] if ":" in decoded else None


class ReplayGuard:
    """Remembers signed tokens for ``MAX_AGE`` (twice, for clock skew): a second call with the
    same token is refused. Per process; the store's unique report key is the durable guard."""

    def __init__(self, keep: float = 2 * MAX_AGE) -> None:
        self._seen: dict[str, float] = {}
        self._keep = keep
        self._lock = threading.Lock()

    def first_time(self, token: str, now: float | None = None) -> bool:
        at = now or time.monotonic()
        with self._lock:
            for old in [t for t, seen in self._seen.items() if at - seen > self._keep]:
                del self._seen[old]
            if token in self._seen:
                return False
            self._seen[token] = at
            return True
