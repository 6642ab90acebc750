"""The confirmation email: standards on the bytes, both parts carry the link, not a bulk message,
and it reaches a real SMTP server."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from dataclasses import replace
from email.message import EmailMessage

from digest.config.settings import Settings
from digest.render.tokens import Purpose, read_token
from digest.web.confirmation import build_confirmation, confirm_url, send_confirmation
from tests.conftest import SECRET, SmtpServer

NOW = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)


def _parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_confirm_url_carries_a_confirm_token_for_the_subscriber(settings: Settings) -> None:
    url = confirm_url(settings, 42, NOW)
    prefix = "https://stiri.example.ro/digest/confirm/"
    assert url.startswith(prefix)
    token = url[len(prefix):]
    assert read_token(SECRET, Purpose.CONFIRM, token, now=NOW) == 42


def test_message_meets_the_standards_checklist(settings: Settings) -> None:
    url = confirm_url(settings, 7, NOW)
    data = build_confirmation(settings, email="ion@bücher.de", name="Ștefan Mureșan",
                              url=url, now=NOW)
    assert data.isascii(), "the raw message must be 7-bit clean"
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF line ends only
    msg = _parse(data)
    for header in ("Date", "From", "To", "Subject", "Message-ID", "MIME-Version"):
        assert len(msg.get_all(header) or []) == 1, header
    assert msg.get_all("MIME-Version") == ["1.0"]
    assert "List-Unsubscribe" not in msg and "List-Id" not in msg  # transactional, not bulk
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith("@example.ro>")
    assert msg["Date"] == "Tue, 04 Mar 2025 05:06:07 +0000"
    # Display names as RFC 2047 encoded-words; addresses stay plain ASCII.
    raw_headers = data.split(b"\r\n\r\n", 1)[0].decode()
    assert "=?utf-8?" in raw_headers
    assert msg["To"].addresses[0].display_name == "Ștefan Mureșan"
    assert msg["To"].addresses[0].addr_spec == "ion@xn--bcher-kva.de"
    assert msg["From"].addresses[0].display_name == "Știri de Argeș"
    assert msg["Subject"] == "Confirm your subscription to Știri de Argeș"
    # multipart/alternative: text first, HTML last, UTF-8 quoted-printable.
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert "MIME-Version" not in part
        assert url in part.get_content()
    text = parts[0].get_content().replace("\r\n", "\n")
    assert text.startswith("Hello Ștefan Mureșan,\n\nSomeone")
    assert settings.privacy_url in text and settings.postal_address in text
    assert all(len(line) <= 78 for line in text.splitlines() if "://" not in line)
    html = parts[1].get_content()
    assert 'role="presentation"' in html and "<script" not in html and "<form" not in html
    assert f'href="{url}"' in html


def test_no_name_and_reply_to(settings: Settings) -> None:
    s = replace(settings, reply_to="Redacția <redactia@example.ro>")
    msg = _parse(build_confirmation(s, email="ana@example.ro", name=None,
                                    url=confirm_url(s, 1, NOW), now=NOW))
    assert str(msg["To"]) == "ana@example.ro"
    assert msg["Reply-To"].addresses[0].addr_spec == "redactia@example.ro"
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None and body.get_content().startswith("Hello,\r\n\r\nSomeone")


def test_html_escapes_the_name(settings: Settings) -> None:
    msg = _parse(build_confirmation(settings, email="ana@example.ro", name="<b>Ana</b>",
                                    url=confirm_url(settings, 1, NOW), now=NOW))
    html = msg.get_body(preferencelist=("html",))
    assert html is not None
    assert "&lt;b&gt;Ana&lt;/b&gt;" in html.get_content()


async def test_send_confirmation_reaches_a_real_smtp_server(smtp_settings: Settings,
                                                            smtp_server: SmtpServer) -> None:
    reply = await send_confirmation(smtp_settings, subscriber_id=3, email="ana@example.ro",
                                    name="Ana", now=NOW)
    assert "OK" in reply
    [received] = smtp_server.received
    assert received.envelope_from == "stiri@example.ro"
    assert received.envelope_to == ["ana@example.ro"]
    assert confirm_url(smtp_settings, 3, NOW) in received.message.get_body(
        preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
