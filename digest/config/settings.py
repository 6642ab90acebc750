"""Settings: the only module that reads the environment.

``load_settings()`` reads a ``.env`` file in the working directory first (values already in the
environment win), validates every ``DIGEST_*`` key once, and returns one frozen ``Settings``.
An invalid value raises ``ConfigError`` naming the key, the bad value (never a secret) and a fix.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from digest.config import values
from digest.config.errors import ConfigError
from digest.config.feedback_settings import FeedbackSettings, read_feedback
from digest.config.locales import available_locales
from digest.config.values import Weekday

__all__ = ["Settings", "SmtpSecurity", "Weekday", "load_settings"]

T = TypeVar("T")

# Keys whose values must never be echoed back in an error message.
_SECRET_KEYS = frozenset({"DIGEST_SECRET_KEY", "DIGEST_SMTP_PASSWORD"})


class SmtpSecurity(enum.StrEnum):
    """How the SMTP connection is protected."""

    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


_DEFAULT_PORTS = {SmtpSecurity.NONE: 25, SmtpSecurity.STARTTLS: 587, SmtpSecurity.TLS: 465}


@dataclass(frozen=True)
class Settings:
    """Validated configuration. Build with ``load_settings()`` or directly in tests."""

    database_url: str = "sqlite:///digest.db"
    site_name: str = "Digest"
    site_url: str = "http://localhost:8000"
    base_url: str = "http://localhost:8000"
    privacy_url_override: str | None = None
    postal_address: str = ""
    from_addr: str = "Digest <digest@localhost>"
    reply_to: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_security: SmtpSecurity = SmtpSecurity.STARTTLS
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_timeout: float = 30.0
    smtp_ca_file: Path | None = None
    smtp_max_per_connection: int = 100
    smtp_ehlo_name: str | None = None  # None: the machine's fully qualified name
    send_concurrency: int = 4
    send_rate: float = 0.0
    batch_size: int = 2000
    max_items: int = 10
    max_lookback_days: int = 14
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Bucharest"))
    templates_dir: Path | None = None
    dkim_domain: str | None = None
    dkim_selector: str | None = None
    dkim_private_key_file: Path | None = None
    feed_timeout: float = 20.0
    feed_max_bytes: int = 5_000_000
    lock_dir: Path | None = None
    claim_timeout: float = 3600.0
    # issue 10: staging addresses, and the List-Id label
    allow_reserved_domains: bool = False
    list_id: str | None = None
    # The publication's language (issue 11): a reader's own locale wins when we have it.
    locale: str = "en"
    # The schedule (delivery.schedule): local hour and the weekly digest's day.
    send_hour: int = 7
    weekly_day: Weekday = Weekday.MONDAY
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)  # bounces, complaints

    @property
    def privacy_url(self) -> str:
        """The privacy link: the override, or the page ``digest serve`` answers."""
        return self.privacy_url_override or f"{self.base_url.rstrip('/')}/privacy"

    @property
    def from_address(self) -> Address:
        """``DIGEST_FROM`` parsed into an ``Address`` (display name kept)."""
        name, addr = parseaddr(self.from_addr)
        user, _, domain = addr.rpartition("@")
        return Address(display_name=name, username=user, domain=domain)

    @property
    def dkim_enabled(self) -> bool:
        return bool(self.dkim_domain and self.dkim_selector and self.dkim_private_key_file)

    def require_secret_key(self) -> str:
        """Return the secret key, or refuse to go on: links cannot be signed without it."""
        if not self.secret_key:
            raise ConfigError(
                "DIGEST_SECRET_KEY is not set; sending and serving need it to sign reader links.",
                'Generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
                " and put DIGEST_SECRET_KEY=<it> in .env",
            )
        return self.secret_key


def _bad(key: str, raw: str, why: str, hint: str) -> ConfigError:
    shown = "<hidden>" if key in _SECRET_KEYS else repr(raw)
    return ConfigError(f"{key}={shown} is invalid: {why}", hint)


class _Reader:
    """Pulls typed values out of a merged environment mapping, collecting nothing twice."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, key: str, default: str | None) -> str | None:
        value = self.env.get(key)
        if value is None or value.strip() == "":
            return default
        return value.strip()

    def convert(self, key: str, default: T, parse: Callable[[str], T], why: str, hint: str) -> T:
        raw = self.text(key, None)
        if raw is None:
            return default
        try:
            return parse(raw)
        except (ValueError, KeyError, ZoneInfoNotFoundError) as exc:
            raise _bad(key, raw, why, hint) from exc

    def number(self, key: str, default: int, minimum: int = 0) -> int:
        def parse(raw: str) -> int:
            value = int(raw)
            if value < minimum:
                raise ValueError(raw)
            return value

        return self.convert(key, default, parse, f"expected a whole number >= {minimum}",
                            f"set {key} to a number such as {default}")

    def real(self, key: str, default: float) -> float:
        def parse(raw: str) -> float:
            value = float(raw)
            if value < 0:
                raise ValueError(raw)
            return value

        return self.convert(key, default, parse, "expected a number >= 0",
                            f"set {key} to a number such as {default}")

    def flag(self, key: str, default: bool) -> bool:
        return self.convert(key, default, values.boolean, "expected true or false",
                            f"set {key}=true or {key}=false")

    def url(self, key: str, default: str | None) -> str | None:
        raw = self.text(key, None)
        if raw is None:
            return default
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise _bad(key, raw, "expected an absolute http(s) URL",
                       f"set {key} like https://news.example.ro")
        return raw.rstrip("/")

    def path(self, key: str, must_exist: bool = True) -> Path | None:
        raw = self.text(key, None)
        if raw is None:
            return None
        path = Path(raw).expanduser()
        if must_exist and not path.exists():
            raise _bad(key, raw, "no such file or folder", f"check the path in {key}")
        return path


def _mailbox(key: str, raw: str) -> str:
    _name, addr = parseaddr(raw)
    if "@" not in addr or addr.startswith("@") or addr.endswith("@"):
        raise _bad(key, raw, "expected an address like 'News <news@example.ro>'",
                   f"set {key} to the sender address readers see")
    return raw


def load_settings(
    env: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> Settings:
    """Read ``env_file`` (if present) then ``env`` (default ``os.environ``); validate; return."""
    merged: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ if env is None else env)
    r = _Reader(merged)

    security = r.convert(
        "DIGEST_SMTP_SECURITY", SmtpSecurity.STARTTLS, lambda v: SmtpSecurity(v.lower()),
        "expected none, starttls or tls", "set DIGEST_SMTP_SECURITY=starttls (port 587) or "
        "tls (port 465); none only for a local relay",
    )
    base_url = r.url("DIGEST_BASE_URL", "http://localhost:8000") or "http://localhost:8000"
    settings = Settings(
        database_url=r.text("DIGEST_DATABASE_URL", "sqlite:///digest.db") or "",
        site_name=r.text("DIGEST_SITE_NAME", "Digest") or "Digest",
        site_url=r.url("DIGEST_SITE_URL", base_url) or base_url,
        base_url=base_url,
        privacy_url_override=r.url("DIGEST_PRIVACY_URL", None),
        postal_address=r.text("DIGEST_POSTAL_ADDRESS", "") or "",
        from_addr=_mailbox("DIGEST_FROM",
                           r.text("DIGEST_FROM", None) or "Digest <digest@localhost>"),
        reply_to=_mailbox("DIGEST_REPLY_TO", v) if (v := r.text("DIGEST_REPLY_TO", None)) else None,
        secret_key=r.text("DIGEST_SECRET_KEY", None),
        smtp_host=r.text("DIGEST_SMTP_HOST", "localhost") or "localhost",
        smtp_port=r.number("DIGEST_SMTP_PORT", _DEFAULT_PORTS[security], minimum=1),
        smtp_security=security,
        smtp_username=r.text("DIGEST_SMTP_USERNAME", None),
        smtp_password=r.text("DIGEST_SMTP_PASSWORD", None),
        smtp_timeout=r.real("DIGEST_SMTP_TIMEOUT", 30.0),
        smtp_ca_file=r.path("DIGEST_SMTP_CA_FILE"),
        smtp_max_per_connection=r.number("DIGEST_SMTP_MAX_PER_CONNECTION", 100, minimum=1),
        smtp_ehlo_name=r.convert("DIGEST_SMTP_EHLO_NAME", None, values.ehlo_name,
                                 "not a host name", "use this machine's public DNS name, e.g. "
                                 "mail.example.ro, or leave it empty for the default"),
        send_concurrency=r.number("DIGEST_SEND_CONCURRENCY", 4, minimum=1),
        send_rate=r.real("DIGEST_SEND_RATE", 0.0),
        batch_size=r.number("DIGEST_BATCH_SIZE", 2000, minimum=1),
        max_items=r.number("DIGEST_MAX_ITEMS", 10, minimum=1),
        max_lookback_days=r.number("DIGEST_MAX_LOOKBACK_DAYS", 14, minimum=1),
        timezone=r.convert("DIGEST_TIMEZONE", ZoneInfo("Europe/Bucharest"), ZoneInfo,
                           "unknown time zone", "use an IANA name such as Europe/Bucharest"),
        templates_dir=r.path("DIGEST_TEMPLATES_DIR"),
        dkim_domain=r.text("DIGEST_DKIM_DOMAIN", None),
        dkim_selector=r.text("DIGEST_DKIM_SELECTOR", None),
        dkim_private_key_file=r.path("DIGEST_DKIM_PRIVATE_KEY_FILE"),
        feed_timeout=r.real("DIGEST_FEED_TIMEOUT", 20.0),
        feed_max_bytes=r.number("DIGEST_FEED_MAX_BYTES", 5_000_000, minimum=1024),
        lock_dir=r.path("DIGEST_LOCK_DIR", must_exist=False),
        claim_timeout=r.real("DIGEST_CLAIM_TIMEOUT", 3600.0),
        allow_reserved_domains=r.flag("DIGEST_ALLOW_RESERVED_DOMAINS", False),
        list_id=r.convert("DIGEST_LIST_ID", None, values.list_label, "expected a dotted name such "
                          "as daily.news.example.ro", "set DIGEST_LIST_ID to a name under a "
                          "domain you control, or leave it out to derive it from DIGEST_FROM"),
        locale=r.convert(
            "DIGEST_LOCALE", "en", values.locale, "no catalog for this language",
            f"use one of {', '.join(available_locales())}, or add a catalog (see the README)"),
        send_hour=r.convert("DIGEST_SEND_HOUR", 7, values.hour, "expected an hour from 0 to 23",
                            "set DIGEST_SEND_HOUR=7 for 07:00 in each reader's timezone"),
        weekly_day=r.convert("DIGEST_WEEKLY_DAY", Weekday.MONDAY, Weekday.parse,
                             "expected a day of the week", "set DIGEST_WEEKLY_DAY=monday "
                             "(or tuesday ... sunday)"),
        feedback=read_feedback(r),
    )
    _check_combinations(settings)
    return settings


def _check_combinations(s: Settings) -> None:
    """Rules that involve more than one key."""
    if s.smtp_username and not s.smtp_password:
        raise ConfigError("DIGEST_SMTP_USERNAME is set but DIGEST_SMTP_PASSWORD is not.",
                          "set both, or neither for a server without AUTH")
    dkim = [s.dkim_domain, s.dkim_selector, s.dkim_private_key_file]
    if any(dkim) and not all(dkim):
        raise ConfigError(
            "DKIM is half configured.",
            "set all three of DIGEST_DKIM_DOMAIN, DIGEST_DKIM_SELECTOR and "
            "DIGEST_DKIM_PRIVATE_KEY_FILE, or none of them",
        )
    if not s.database_url.split(":", 1)[0]:
        raise ConfigError(f"DIGEST_DATABASE_URL={s.database_url!r} is invalid.",
                          "use a SQLAlchemy URL such as sqlite:///digest.db")
