"""Open one SMTP connection the way the settings say: plain, STARTTLS or implicit TLS, with
certificate verification, timeouts and AUTH -- and never AUTH over a cleartext
connection unless ``DIGEST_SMTP_SECURITY=none`` was chosen explicitly.

``transport.pool`` pools these connections for bulk sending; ``send_one`` serves single
transactional messages such as confirmation emails. Both greet with the same EHLO name
(``DIGEST_SMTP_EHLO_NAME``, else ``ehlo_name``: the machine's fully qualified name).

A wrong password is a configuration error (exit 2) raised after ONE attempt with ONE
mechanism: trying every mechanism the server offers (aiosmtplib's ``login``) doubles the failed
logins that fail2ban-style guards count, and a second mechanism never fixes a wrong password.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl

import aiosmtplib

from digest.config.errors import ConfigError
from digest.config.settings import Settings, SmtpSecurity

__all__ = ["AUTH_PREFERENCE", "close_connection", "ehlo_name", "open_connection", "send_one",
           "tls_context"]

# The mechanism used is the first of these the server offers. PLAIN is what every server
# implements correctly (we only AUTH over TLS, or over a link declared trusted); CRAM-MD5 is
# last: servers often advertise it without the stored secrets it needs.
AUTH_PREFERENCE = ("plain", "login", "cram-md5")
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "localhost6",
                          "localhost6.localdomain6", "ip6-localhost"})


@functools.cache
def ehlo_name() -> str:
    """The machine's fully qualified name for EHLO: ``socket.getfqdn()``, unless that says
    ``localhost`` (a common /etc/hosts) and a better name exists. Strict relays refuse a
    client that greets as ``localhost``."""
    candidates = [socket.getfqdn(), socket.gethostname()]
    try:
        host, aliases, _ = socket.gethostbyname_ex(socket.gethostname())
        candidates += [host, *aliases]
    except OSError:
        pass
    names = [c.strip().rstrip(".") for c in candidates
             if c.strip() and c.strip().lower() not in _LOCAL_NAMES]
    dotted = [n for n in names if "." in n]
    return (dotted or names or ["localhost"])[0]


async def _ehlo_name() -> str:
    # The first lookup may block on DNS: on a thread. Then it is known (a bulk send opens a
    # connection every DIGEST_SMTP_MAX_PER_CONNECTION messages: no thread hop each time).
    if ehlo_name.cache_info().currsize:
        return ehlo_name()
    return await asyncio.to_thread(ehlo_name)


async def _auth(client: aiosmtplib.SMTP, settings: Settings) -> None:
    """One AUTH command with the best mechanism offered; a 5xx refusal is a ConfigError."""
    user, password = settings.smtp_username or "", settings.smtp_password or ""
    mechanism = next((m for m in AUTH_PREFERENCE if m in client.server_auth_methods), None)
    try:
        if mechanism is None:  # none we prefer (or no AUTH at all): aiosmtplib's own choice
            await client.login(user, password)
        else:
            await getattr(client, f"auth_{mechanism.replace('-', '')}")(user, password)
    except aiosmtplib.SMTPAuthenticationError as exc:
        if exc.code < 500:
            raise  # 454 and the like: temporary, worth another connection later
        raise ConfigError(
            f"SMTP authentication failed ({(mechanism or 'AUTH').upper()}): "
            f"{exc.code} {exc.message}",
            "check DIGEST_SMTP_USERNAME and DIGEST_SMTP_PASSWORD (and that the account may "
            "send through this server). The run stopped after this one attempt, so that "
            "guards such as fail2ban do not ban this machine; nothing was sent with these "
            "credentials and the deliveries stay pending for the next run") from exc


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
        local_hostname=settings.smtp_ehlo_name or await _ehlo_name(),
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
            await client.ehlo()  # again after STARTTLS: the AUTH offer may differ
            await _auth(client, settings)
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
