"""Open one SMTP connection the way the settings say: plain, STARTTLS or implicit TLS, with
certificate verification, timeouts and AUTH -- and never AUTH over a cleartext
connection unless ``DIGEST_SMTP_SECURITY=none`` was chosen explicitly.

``transport.pool`` pools these connections for bulk sending; ``send_one`` serves single
transactional messages such as confirmation emails.
"""

from __future__ import annotations

import ssl

import aiosmtplib

from digest.config.errors import ConfigError
from digest.config.settings import Settings, SmtpSecurity

__all__ = ["close_connection", "open_connection", "send_one", "tls_context"]


def tls_context(settings: Settings) -> ssl.SSLContext:
    """A verifying TLS context; ``DIGEST_SMTP_CA_FILE`` adds a private CA (in-house relays)."""
    context = ssl.create_default_context()
    if settings.smtp_ca_file is not None:
        context.load_verify_locations(cafile=str(settings.smtp_ca_file))
    return context


async def open_connection(settings: Settings) -> aiosmtplib.SMTP:
    """Connect, secure and authenticate; the caller closes with ``quit()``."""
    security = settings.smtp_security
    client = aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        use_tls=security is SmtpSecurity.TLS,
        start_tls=False,  # done explicitly below, so a missing STARTTLS is an error, not a fallback
        tls_context=tls_context(settings) if security is not SmtpSecurity.NONE else None,
        timeout=settings.smtp_timeout,
    )
    await client.connect()
    try:
        if security is SmtpSecurity.STARTTLS:
            await client.ehlo()
            if not client.supports_extension("starttls"):
                raise ConfigError(
                    f"{settings.smtp_host}:{settings.smtp_port} does not offer STARTTLS.",
                    "use DIGEST_SMTP_SECURITY=tls for port 465, or none only for a trusted "
                    "local relay",
                )
            await client.starttls(tls_context=tls_context(settings))
        if settings.smtp_username:
            await client.login(settings.smtp_username, settings.smtp_password or "")
    except BaseException:
        client.close()
        raise
    return client


async def send_one(settings: Settings, sender: str, recipient: str, data: bytes) -> str:
    """Send one pre-serialized message on a fresh connection; return the server's reply."""
    client = await open_connection(settings)
    try:
        _errors, reply = await client.sendmail(sender, [recipient], data)
    finally:
        await close_connection(client)
    return reply


async def close_connection(client: aiosmtplib.SMTP) -> None:
    """QUIT politely; if the server is gone or answers badly, just close the socket."""
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()
