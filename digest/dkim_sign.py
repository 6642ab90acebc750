"""DKIM signing (dkimpy) of the exact bytes that will be sent.

The key is read and checked once, when the renderer starts, so a missing or unreadable key is a
configuration error at startup rather than a failure on the first of 100,000 messages.
"""

from __future__ import annotations

from pathlib import Path

import dkim

from digest.errors import ConfigError
from digest.settings import Settings

__all__ = ["SIGNED_HEADERS", "DkimSigner"]

# The headers a receiver must be able to trust: who, what, when, which message, and the
# unsubscribe headers (RFC 8058 requires List-Unsubscribe(-Post) to be covered).
SIGNED_HEADERS: tuple[str, ...] = (
    "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
    "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "Reply-To",
)

_PROBE = (b"From: probe@example.invalid\r\nTo: probe@example.invalid\r\nSubject: probe\r\n"
          b"\r\nprobe\r\n")


class DkimSigner:
    """Signs messages for ``domain`` with ``selector`` (relaxed/relaxed, rsa-sha256)."""

    def __init__(self, domain: str, selector: str, key_file: Path) -> None:
        self.domain = domain.encode("idna")
        self.selector = selector.encode("ascii")
        try:
            self._key = key_file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"Cannot read the DKIM key {key_file}: {exc.strerror}.",
                              "check DIGEST_DKIM_PRIVATE_KEY_FILE and the file's permissions"
                              ) from exc
        try:
            self._sign(_PROBE, (b"from", b"to", b"subject"))
        except (dkim.DKIMException, ValueError) as exc:  # binascii.Error is a ValueError
            raise ConfigError(f"The DKIM key {key_file} cannot sign: {exc}.",
                              "use an RSA private key in PEM form, e.g. made with "
                              "`openssl genrsa -out dkim.pem 2048`") from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> DkimSigner | None:
        if not settings.dkim_enabled:
            return None
        assert settings.dkim_domain and settings.dkim_selector
        assert settings.dkim_private_key_file is not None
        return cls(settings.dkim_domain, settings.dkim_selector, settings.dkim_private_key_file)

    def _sign(self, data: bytes, headers: tuple[bytes, ...]) -> bytes:
        signature: bytes = dkim.sign(
            data, self.selector, self.domain, self._key,
            canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=b"rsa-sha256",
            include_headers=list(headers), linesep=b"\r\n")
        return signature

    def sign(self, data: bytes, *, has_reply_to: bool = False) -> bytes:
        """``data`` with a DKIM-Signature header in front."""
        names = SIGNED_HEADERS if has_reply_to else SIGNED_HEADERS[:-1]
        return self._sign(data, tuple(n.lower().encode() for n in names)) + data
