"""The DESIGN.md standards checklist, on messages built by the renderer and carried by a real
SMTP server; and the hand-built bytes compared with what the stdlib's EmailMessage makes."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.policy
from dataclasses import replace
from email.message import EmailMessage

import pytest

from digest.compose import Digest, ReaderView, compose
from digest.config.errors import InvalidInput
from digest.config.settings import Settings
from digest.render.identity import installation_tag, message_id_for
from digest.render.message import Renderer
from digest.render.tokens import Purpose, make_token, read_token
from digest.transport.connection import send_one
from tests.conftest import SmtpServer
from tests.mailcheck import (
    EDITION,
    NASTY_TITLE,
    STEFAN,
    assert_checklist,
    long_article,
    parse,
    sample_digest,
)


def unsubscribe_url(settings: Settings, subscriber_id: int) -> str:
    token = make_token(settings.secret_key or "", Purpose.UNSUBSCRIBE, subscriber_id)
    return f"{settings.base_url}/unsubscribe/{token}"


def test_checklist_on_a_message_sent_through_real_smtp(smtp_settings: Settings,
                                                       smtp_server: SmtpServer) -> None:
    outgoing = Renderer(smtp_settings).render(sample_digest()).message_for(STEFAN)
    asyncio.run(send_one(smtp_settings, outgoing.sender, outgoing.recipient, outgoing.data))

    [received] = smtp_server.received
    assert received.envelope_from == "stiri@example.ro"
    assert received.envelope_to == ["stefan.muresan@example.ro"]
    message = assert_checklist(received.data,
                               unsubscribe_url=unsubscribe_url(smtp_settings, STEFAN.subscriber_id),
                               postal_address=smtp_settings.postal_address)
    assert message["To"].addresses[0].display_name == "Ștefan Mureșan"
    assert message["From"].addresses[0].display_name == "Știri de Argeș"
    assert message["Subject"] == f"Știri de Argeș, November 28, 2026: {NASTY_TITLE}"
    assert message["List-Id"] == "Știri de Argeș <daily.example.ro>"  # the From domain
    tag = installation_tag(smtp_settings.secret_key or "")
    assert message["Message-ID"] == message_id_for(7, 42, "example.ro", tag) == outgoing.message_id
    assert tag and tag in outgoing.message_id
    assert message["Precedence"] == "bulk"
    assert message["Auto-Submitted"] == "auto-generated"
    # The Date is the edition's cutoff, in the site's timezone.
    assert message["Date"].datetime == EDITION.cutoff
    assert str(message["Date"]).endswith("+0200")


def test_long_base_url_keeps_list_unsubscribe_on_one_unfolded_line(settings: Settings) -> None:
    base = "https://stiri.example.ro/" + "abonamente-si-newslettere/" * 7
    base = base[:200].rstrip("/")
    assert len(base) == 200
    long = replace(settings, base_url=base)
    data = Renderer(long).render(sample_digest()).message_for(STEFAN).data
    url = unsubscribe_url(long, STEFAN.subscriber_id)
    message = assert_checklist(data, unsubscribe_url=url)
    assert f"\r\nList-Unsubscribe: <{url}>\r\n".encode() in data
    assert read_token(long.secret_key or "", Purpose.UNSUBSCRIBE,
                      url.rsplit("/", 1)[1]) == STEFAN.subscriber_id
    assert url in message.get_body(("html",)).get_content()  # type: ignore[union-attr]


def test_idn_recipient_gets_an_ascii_envelope_and_to_header(settings: Settings) -> None:
    reader = ReaderView(5, "ion@bücher.de", "Ion")
    outgoing = Renderer(settings).render(sample_digest()).message_for(reader)
    assert outgoing.recipient == "ion@xn--bcher-kva.de"
    message = assert_checklist(outgoing.data)
    assert message["To"].addresses[0].addr_spec == "ion@xn--bcher-kva.de"
    # The reader still sees their own address in the footer, as they typed it.
    assert "ion@bücher.de" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_names_with_quotes_and_header_injection_are_neutralised(settings: Settings) -> None:
    reader = ReaderView(6, "a@example.ro", 'Pop, "Ana"\r\nBcc: evil@example.com')
    data = Renderer(settings).render(sample_digest()).message_for(reader).data
    message = assert_checklist(data)
    assert message["Bcc"] is None
    assert message["To"].addresses[0].display_name == 'Pop, "Ana" Bcc: evil@example.com'
    assert message["To"].addresses[0].addr_spec == "a@example.ro"


def test_plain_text_only_reader_gets_a_single_text_part(settings: Settings) -> None:
    data = Renderer(settings).render(sample_digest(plain_text_only=True)).message_for(STEFAN).data
    message = assert_checklist(data, html_expected=False,
                               unsubscribe_url=unsubscribe_url(settings, STEFAN.subscriber_id),
                               postal_address=settings.postal_address)
    assert not message.is_multipart()
    assert b"text/html" not in data


def test_topics_filtering_through_compose(settings: Settings) -> None:
    articles = [long_article(1, topics=("sport",)), long_article(2, topics=("politica",)),
                long_article(3, topics=("sport", "local"))]
    reader = replace(STEFAN, topics=frozenset({"sport"}))
    digest = compose(articles, reader, EDITION, max_items=10, max_lookback=dt.timedelta(days=14))
    assert digest is not None
    message = assert_checklist(Renderer(settings).render(digest).message_for(reader).data)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "articol/1-" in text and "articol/3-" in text
    assert "articol/2-" not in text


def test_hand_built_message_matches_what_email_message_would_say(settings: Settings) -> None:
    """Rebuild the same message with EmailMessage and compare the meaning, header by header."""
    ours = parse(Renderer(settings).render(sample_digest()).message_for(STEFAN).data)
    text = ours.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = ours.get_body(("html",)).get_content()  # type: ignore[union-attr]

    reference = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
    for name in ("Date", "From", "To", "Subject", "Message-ID", "List-Id", "List-Unsubscribe",
                 "List-Unsubscribe-Post", "Precedence", "Auto-Submitted"):
        reference[name] = str(ours[name])
    reference.set_content(text, cte="quoted-printable")
    reference.add_alternative(html, subtype="html", cte="quoted-printable")
    theirs = parse(reference.as_bytes())

    for name in ("Date", "From", "To", "Subject", "Message-ID", "List-Id", "List-Unsubscribe",
                 "List-Unsubscribe-Post", "MIME-Version"):
        assert str(ours[name]) == str(theirs[name]), name
    assert ours["To"].addresses == theirs["To"].addresses
    assert ours["Date"].datetime == theirs["Date"].datetime
    assert [p.get_content_type() for p in ours.iter_parts()] == \
        [p.get_content_type() for p in theirs.iter_parts()]
    for mine, ref in zip(ours.iter_parts(), theirs.iter_parts(), strict=True):
        assert mine.get_content() == ref.get_content()
        assert mine.get_content_charset() == ref.get_content_charset() == "utf-8"


def test_message_ids_are_deterministic_and_distinct(settings: Settings) -> None:
    renderer = Renderer(settings)
    first = renderer.render(sample_digest()).message_for(STEFAN)
    again = Renderer(settings).render(sample_digest()).message_for(STEFAN)
    assert first.data == again.data  # a resend is byte-identical
    other_edition = Digest(replace(EDITION, id=8), sample_digest().articles)
    ids = {first.message_id, renderer.render(other_edition).message_for(STEFAN).message_id,
           renderer.render(sample_digest()).message_for(replace(STEFAN, subscriber_id=43))
           .message_id}
    assert len(ids) == 3
    assert message_id_for(7, 42, "bücher.de") == "<digest.7.42@xn--bcher-kva.de>"
    # Another installation (another secret) never reuses an id, even with the same row ids.
    other = Renderer(replace(settings, secret_key="another-installation-secret"))
    assert other.render(sample_digest()).message_for(STEFAN).message_id != first.message_id


def test_address_that_needs_smtputf8_is_a_clear_error(settings: Settings) -> None:
    rendered = Renderer(settings).render(sample_digest())
    with pytest.raises(InvalidInput, match="SMTPUTF8"):
        rendered.message_for(ReaderView(9, "ștefan@example.ro", None))
