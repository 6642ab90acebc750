"""DKIM: the renderer signs the exact bytes sent; dkimpy verifies what a real SMTP server
received against a fake DNS record, and one changed byte in a signed header breaks it."""

from __future__ import annotations

import asyncio
import base64
import re
from dataclasses import replace
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from digest.errors import ConfigError
from digest.render import Renderer
from digest.settings import Settings
from digest.smtp import send_one
from tests.conftest import SmtpServer
from tests.mailcheck import STEFAN, assert_checklist, sample_digest

SELECTOR = "digest2026"
DOMAIN = "example.ro"


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """(private key file, the DNS TXT record publishing its public key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("dkim") / "dkim.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def fake_dns(record: bytes):  # type: ignore[no-untyped-def]
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode() else None
    return lookup


def test_signed_message_verifies_after_real_smtp_and_breaks_when_changed(
        smtp_settings: Settings, smtp_server: SmtpServer, key_pair: tuple[Path, bytes]) -> None:
    path, record = key_pair
    signing = replace(smtp_settings, dkim_domain=DOMAIN, dkim_selector=SELECTOR,
                      dkim_private_key_file=path, reply_to="Redacția <redactia@example.ro>")
    outgoing = Renderer(signing).render(sample_digest()).message_for(STEFAN)
    assert outgoing.data.startswith(b"DKIM-Signature: ")
    asyncio.run(send_one(signing, outgoing.sender, outgoing.recipient, outgoing.data))

    [received] = smtp_server.received
    assert received.data == outgoing.data  # signed bytes are exactly the bytes sent
    assert dkim.verify(received.data, dnsfunc=fake_dns(record))
    assert_checklist(received.data)

    signature = received.message["DKIM-Signature"]
    tags = dict(t.strip().split("=", 1) for t in str(signature).split(";") if "=" in t)
    assert tags["a"] == "rsa-sha256" and tags["c"] == "relaxed/relaxed"
    assert tags["d"] == DOMAIN and tags["s"] == SELECTOR
    signed = {h.strip().lower() for h in re.sub(r"\s", "", tags["h"]).split(":")}
    assert {"from", "to", "subject", "date", "message-id", "mime-version", "content-type",
            "list-id", "list-unsubscribe", "list-unsubscribe-post", "reply-to"} <= signed

    tampered = received.data.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                                     b"List-Unsubscribe-Post: List-Unsubscribe=One-Clock")
    assert tampered != received.data
    assert not dkim.verify(tampered, dnsfunc=fake_dns(record))
    body_changed = received.data.replace(b"Read more", b"Read mode", 1)
    assert not dkim.verify(body_changed, dnsfunc=fake_dns(record))


def test_unreadable_or_invalid_key_is_a_config_error_at_startup(settings: Settings,
                                                                tmp_path: Path) -> None:
    missing = replace(settings, dkim_domain=DOMAIN, dkim_selector=SELECTOR,
                      dkim_private_key_file=tmp_path / "nope.pem")
    with pytest.raises(ConfigError, match="Cannot read the DKIM key"):
        Renderer(missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN RSA PRIVATE KEY-----\nnot a key\n"
                       "-----END RSA PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="cannot sign"):
        Renderer(replace(missing, dkim_private_key_file=garbage))


def test_no_signature_without_dkim_settings(settings: Settings) -> None:
    data = Renderer(settings).render(sample_digest()).message_for(STEFAN).data
    assert b"DKIM-Signature" not in data
