"""Settings: defaults, .env precedence, and errors that name the key and say how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.config.errors import ConfigError
from digest.config.settings import SmtpSecurity, load_settings


def test_defaults_follow_the_contract(tmp_path: Path) -> None:
    s = load_settings({}, env_file=None)
    assert s.database_url == "sqlite:///digest.db"
    assert s.timezone.key == "Europe/Bucharest"
    assert s.smtp_security is SmtpSecurity.STARTTLS and s.smtp_port == 587
    assert s.privacy_url == "http://localhost:8000/privacy"
    assert not s.dkim_enabled


def test_dotenv_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DIGEST_SITE_NAME=Știri din .env\nDIGEST_SMTP_SECURITY=tls\n"
                        "DIGEST_BASE_URL=https://stiri.example.ro/\n", encoding="utf-8")
    s = load_settings({"DIGEST_SMTP_SECURITY": "none"}, env_file=env_file)
    assert s.site_name == "Știri din .env"
    assert s.smtp_security is SmtpSecurity.NONE and s.smtp_port == 25
    assert s.base_url == "https://stiri.example.ro"
    assert s.privacy_url == "https://stiri.example.ro/privacy"


@pytest.mark.parametrize(("key", "value", "fragment"), [
    ("DIGEST_SMTP_PORT", "abc", "whole number"),
    ("DIGEST_SMTP_SECURITY", "ssl", "none, starttls or tls"),
    ("DIGEST_TIMEZONE", "Mars/Olympus", "time zone"),
    ("DIGEST_BASE_URL", "stiri.example.ro", "absolute http(s) URL"),
    ("DIGEST_FROM", "not an address", "address"),
    ("DIGEST_SEND_RATE", "-1", ">= 0"),
    ("DIGEST_BATCH_SIZE", "0", ">= 1"),
])
def test_invalid_values_name_the_key_value_and_fix(key: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({key: value}, env_file=None)
    assert key in info.value.message and repr(value) in info.value.message
    assert fragment in info.value.message
    assert info.value.hint


def test_secrets_are_never_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"DIGEST_SMTP_USERNAME": "u"}, env_file=None)
    assert "DIGEST_SMTP_PASSWORD" in str(info.value)
    s = load_settings({"DIGEST_SMTP_PASSWORD": "hunter2", "DIGEST_SMTP_USERNAME": "u",
                       "DIGEST_SECRET_KEY": "s3cret"}, env_file=None)
    assert "hunter2" not in repr(s) and "s3cret" not in repr(s)


def test_half_configured_dkim_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DKIM"):
        load_settings({"DIGEST_DKIM_DOMAIN": "example.ro"}, env_file=None)


def test_missing_secret_key_refuses_with_a_hint() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({}, env_file=None).require_secret_key()
    assert "secrets.token_urlsafe" in info.value.hint
