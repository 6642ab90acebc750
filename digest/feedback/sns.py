"""Amazon SNS message signatures (how SES bounces and complaints arrive over HTTP).

SNS signs each message with an AWS certificate; we verify before believing anything:

- ``SigningCertURL`` and ``SubscribeURL`` must be ``https`` on ``sns.<region>.amazonaws.com``
  (the production pattern; a test passes its own pattern for a local HTTPS server -- there is
  deliberately no setting for it, so no configuration can widen it);
- the certificate is fetched (and cached per URL) and the signature checked over SNS's
  canonical string: SHA1withRSA for ``SignatureVersion`` 1, SHA256withRSA for 2;
- the ``TopicArn`` must be one of ``DIGEST_WEBHOOK_SES_TOPIC_ARNS`` (anybody can create an SNS
  topic, and AWS signs theirs too), and the ``Timestamp`` within an hour.

``SubscriptionConfirmation`` is answered by fetching its (validated) ``SubscribeURL``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["AWS_HOSTS", "SnsError", "SnsVerifier"]

AWS_HOSTS = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?")
MAX_AGE = dt.timedelta(hours=1)
_NOTIFICATION = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}


class SnsError(ValueError):
    """The SNS message is not signed by AWS for one of our topics (answered 403)."""


def string_to_sign(message: dict[str, Any]) -> bytes:
    """SNS's canonical form: ``Key\\nvalue\\n`` for the type's keys, in order, present ones."""
    keys = _NOTIFICATION if message.get("Type") == "Notification" else _SUBSCRIPTION
    return "".join(f"{k}\n{message[k]}\n" for k in keys if k in message).encode()


class SnsVerifier:
    """Verifies SNS messages; ``host_pattern`` and ``ssl_context`` exist for tests only."""

    def __init__(self, topic_arns: tuple[str, ...], host_pattern: re.Pattern[str] = AWS_HOSTS,
                 ssl_context: ssl.SSLContext | None = None, timeout: float = 10.0) -> None:
        self.topic_arns = topic_arns
        self.host_pattern = host_pattern
        self._verify: ssl.SSLContext | bool = ssl_context or True
        self._timeout = timeout
        self._certs: dict[str, rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()

    def _aws_url(self, url: Any, what: str) -> str:
        parts = urlsplit(str(url or ""))
        if parts.scheme != "https" or not self.host_pattern.fullmatch(parts.hostname or ""):
            raise SnsError(f"{what} is not an https URL on an SNS host: {str(url)[:200]!r}")
        return str(url)

    def _key(self, url: str) -> rsa.RSAPublicKey:
        with self._lock:
            cached = self._certs.get(url)
        if cached is not None:
            return cached
        try:
            answer = httpx.get(url, verify=self._verify, timeout=self._timeout)
            answer.raise_for_status()
            key = x509.load_pem_x509_certificate(answer.content).public_key()
        except (httpx.HTTPError, ValueError) as exc:
            raise SnsError(f"cannot fetch the SNS signing certificate: {exc}") from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise SnsError("the SNS signing certificate has no RSA key")
        with self._lock:
            self._certs[url] = key
        return key

    def verify(self, message: dict[str, Any], now: dt.datetime | None = None) -> None:
        """Raise ``SnsError`` unless ``message`` is a fresh, AWS-signed message of our topic."""
        if message.get("TopicArn") not in self.topic_arns:
            raise SnsError(f"topic {str(message.get('TopicArn'))[:200]!r} is not configured")
        algorithm = _HASHES.get(str(message.get("SignatureVersion")))
        if algorithm is None:
            raise SnsError("unknown SignatureVersion")
        try:
            stamp = dt.datetime.fromisoformat(str(message.get("Timestamp")).replace("Z", "+00:00"))
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        except (ValueError, binascii.Error):
            raise SnsError("malformed Timestamp or Signature") from None
        if stamp.tzinfo is None or abs((now or dt.datetime.now(dt.UTC)) - stamp) > MAX_AGE:
            raise SnsError("the message is too old (or from the future): a replay")
        key = self._key(self._aws_url(message.get("SigningCertURL"), "SigningCertURL"))
        try:
            key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise SnsError("the SNS signature does not match") from None

    def confirm(self, message: dict[str, Any]) -> None:
        """Confirm a (verified) subscription by visiting its SubscribeURL."""
        url = self._aws_url(message.get("SubscribeURL"), "SubscribeURL")
        try:
            httpx.get(url, verify=self._verify, timeout=self._timeout).raise_for_status()
        except httpx.HTTPError as exc:
            raise SnsError(f"confirming the subscription failed: {exc}") from None
