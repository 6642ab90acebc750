"""DKIM: the renderer signs the exact bytes sent; dkimpy verifies what a real SMTP server
received against a fake DNS record, and one changed byte in a signed header breaks it."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import re
import shutil
import subprocess
from dataclasses import replace
from email.utils import formataddr
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from dkim.canonicalization import Relaxed

from digest.config.errors import ConfigError
from digest.config.settings import Settings
from digest.render.dkim import SIGNED_HEADERS, DkimSigner, relaxed_body, relaxed_header
from digest.render.message import Renderer
from digest.transport.connection import send_one
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
            "list-id", "list-unsubscribe", "list-unsubscribe-post", "feedback-id",
            "reply-to"} <= signed
    assert_checklist(received.data, dkim=True)
    # Gmail's Feedback-ID (edition:frequency:list:sender) is signed: changing it breaks DKIM.
    assert received.message["Feedback-ID"] == "7:daily:daily.example.ro:example.ro"
    forged = received.data.replace(b"Feedback-ID: 7:daily:", b"Feedback-ID: 8:daily:")
    assert forged != received.data and not dkim.verify(forged, dnsfunc=fake_dns(record))

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


# --- The signer itself (RFC 6376 relaxed/relaxed, OpenSSL RSA), checked against dkimpy ---------

LONG_URL = "https://stiri.example.ro/" + "u" * 152 + "/unsubscribe/abcdefghij"
SUBJECT = ("Subject: =?utf-8?b?yJh0aXJpIGRlIEFyZ2XImSwgMjggTm92ZW1iZXIgMjAyNjog?=\r\n"
           " =?utf-8?b?4oCeUHJpbWFydWwgYSBzcHVz4oCdIMiZaSBhbHRlIMiZdGlyaQ==?=\r\n"
           "\t  and a third  folded\t line   \r\n")
BODIES = {
    "plain": b"Salut,\r\nA doua linie.\r\n",
    "trailing blank lines": b"Salut,\r\nA doua linie.\r\n\r\n\r\n \r\n\r\n",
    "whitespace at line ends": b"Salut, \t \r\n  indented\t\ttabs  inside  \r\nend\t\r\n",
    "no final CRLF": b"Salut,\r\nlast line",
    "empty": b"",
}


def hand_built(body: bytes, *, reply_to: bool) -> bytes:
    """A message with the shapes that matter to canonicalization: encoded non-ASCII names, a
    folded Subject with tabs and runs of spaces, a 200-character List-Unsubscribe URL."""
    assert len(LONG_URL) == 200
    head = ("Date: Sat, 28 Nov 2026 07:00:00 +0200\r\n"
            f"From: {formataddr(('Știri de Argeș', 'stiri@example.ro'))}\r\n"
            f"To: {formataddr(('Ștefan Mureșan', 'stefan.muresan@example.ro'))}\r\n"
            "Message-ID: <digest.7.42@example.ro>\r\n"
            + SUBJECT
            + "MIME-Version: 1.0\r\n"
            + (f"Reply-To: {formataddr(('Redacția', 'redactia@example.ro'))}\r\n"
               if reply_to else "")
            + "List-Id: =?utf-8?b?yJh0aXJpIGRlIEFyZ2XImQ==?= <daily.stiri.example.ro>\r\n"
            f"List-Unsubscribe: <{LONG_URL}>\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            "Content-Type: text/plain; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n")
    return head.encode("ascii") + body


def tag_values(signed: bytes) -> dict[str, str]:
    header = email.message_from_bytes(signed, policy=email.policy.default)["DKIM-Signature"]
    value = re.sub(r"\s", "", str(header))
    return dict(t.split("=", 1) for t in value.split(";") if t)


@pytest.mark.parametrize("reply_to", [False, True])
@pytest.mark.parametrize("body", list(BODIES), ids=list(BODIES))
def test_every_signature_verifies_with_dkimpy(key_pair: tuple[Path, bytes], body: str,
                                              reply_to: bool) -> None:
    path, record = key_pair
    data = hand_built(BODIES[body], reply_to=reply_to)
    signed = DkimSigner(DOMAIN, SELECTOR, path).sign(data, has_reply_to=reply_to)
    assert signed.endswith(data)
    assert dkim.verify(signed, dnsfunc=fake_dns(record))

    header = signed[:len(signed) - len(data)]
    assert header.startswith(b"DKIM-Signature: ") and header.endswith(b"\r\n")
    assert header.isascii() and b"\n" not in header.replace(b"\r\n", b"")
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))
    tags = tag_values(signed)
    assert tags["v"] == "1" and tags["a"] == "rsa-sha256" and tags["c"] == "relaxed/relaxed"
    assert tags["d"] == DOMAIN and tags["s"] == SELECTOR
    names = [n.title() for n in SIGNED_HEADERS[:None if reply_to else -1]]
    assert tags["h"].split(":") == [n.lower() for n in names]
    assert "t" not in tags  # no timestamp: a resend is byte-identical
    assert DkimSigner(DOMAIN, SELECTOR, path).sign(data, has_reply_to=reply_to) == signed


@pytest.mark.parametrize("change", [
    (b"List-Unsubscribe=One-Click", b"List-Unsubscribe=One-Clicc"),
    (b"A doua linie", b"A doua linia"),
    (b"stefan.muresan@", b"stefan.muresam@"),
    (b"Subject: =?utf-8?b?yJh0", b"Subject: =?utf-8?b?yJh1"),
    (b"unsubscribe/abcdefghij", b"unsubscribe/abcdefghik"),
], ids=["List-Unsubscribe-Post", "body", "To", "Subject", "List-Unsubscribe"])
def test_one_changed_byte_breaks_the_signature(key_pair: tuple[Path, bytes],
                                                change: tuple[bytes, bytes]) -> None:
    path, record = key_pair
    signed = DkimSigner(DOMAIN, SELECTOR, path).sign(
        hand_built(BODIES["trailing blank lines"], reply_to=True), has_reply_to=True)
    assert dkim.verify(signed, dnsfunc=fake_dns(record))
    tampered = signed.replace(*change)
    assert len(tampered) == len(signed) and tampered != signed
    assert not dkim.verify(tampered, dnsfunc=fake_dns(record))


def test_relaxed_canonicalization_tolerates_what_relaxed_allows(
        key_pair: tuple[Path, bytes]) -> None:
    """Whitespace changes that relaxed/relaxed ignores (a refolded header, spaces at line ends,
    extra empty lines at the end) keep the signature valid: what a forwarding MTA may do."""
    path, record = key_pair
    signed = DkimSigner(DOMAIN, SELECTOR, path).sign(
        hand_built(BODIES["plain"], reply_to=False))
    for old, new in [(b"MIME-Version: 1.0", b"MIME-Version:\t 1.0  "),
                     (b"Message-ID: <digest", b"message-id:\r\n  <digest"),
                     (b"A doua linie.\r\n", b"A  doua\tlinie. \r\n\r\n")]:
        assert old in signed
        assert dkim.verify(signed.replace(old, new, 1), dnsfunc=fake_dns(record))


def test_the_bottom_most_instance_of_a_header_is_signed(key_pair: tuple[Path, bytes]) -> None:
    """RFC 6376 §5.4.2: with two Subject fields the lower one is signed, so changing it breaks
    the signature and changing the upper one does not."""
    path, record = key_pair
    data = hand_built(BODIES["plain"], reply_to=False).replace(
        b"MIME-Version", b"Subject: the bottom one\r\nMIME-Version", 1)
    signed = DkimSigner(DOMAIN, SELECTOR, path).sign(data)
    assert dkim.verify(signed, dnsfunc=fake_dns(record))
    assert signed.count(b"the bottom one") == signed.count(b"and a third") == 1
    assert not dkim.verify(signed.replace(b"the bottom one", b"the bottom onf"),
                           dnsfunc=fake_dns(record))
    assert dkim.verify(signed.replace(b"and a third", b"and a thirf"), dnsfunc=fake_dns(record))


@pytest.mark.parametrize("body", list(BODIES), ids=list(BODIES))
def test_body_hash_and_canonical_forms_match_dkimpy(key_pair: tuple[Path, bytes],
                                                    body: str) -> None:
    path, _ = key_pair
    data = hand_built(BODIES[body], reply_to=False)
    ours = tag_values(DkimSigner(DOMAIN, SELECTOR, path).sign(data))
    theirs = tag_values(dkim.sign(data, SELECTOR.encode(), DOMAIN.encode(), path.read_bytes(),
                                  canonicalize=(b"relaxed", b"relaxed"),
                                  include_headers=[b"from", b"to", b"subject"]) + data)
    assert ours["bh"] == theirs["bh"]
    assert relaxed_body(BODIES[body]) == Relaxed.canonicalize_body(BODIES[body])
    folded = b" =?utf-8?b?x?=\r\n \t a  b\t \r\n  c  "
    assert relaxed_header(b"Subject ", folded) + b"\r\n" == b"".join(
        name + b":" + value for name, value in Relaxed.canonicalize_headers([(b"Subject ",
                                                                               folded)]))


@pytest.mark.parametrize("reply_to", [None, "Redacția <redactia@example.ro>"])
def test_rendered_messages_with_a_200_character_base_url_verify(
        settings: Settings, key_pair: tuple[Path, bytes], reply_to: str | None) -> None:
    path, record = key_pair
    base = "https://stiri.example.ro/" + "b" * 200
    signing = replace(settings, dkim_domain=DOMAIN, dkim_selector=SELECTOR,
                      dkim_private_key_file=path, reply_to=reply_to, base_url=base[:200])
    renderer = Renderer(signing)
    for plain in (False, True):
        data = renderer.render(sample_digest(plain)).message_for(STEFAN).data
        assert dkim.verify(data, dnsfunc=fake_dns(record))
        assert ("reply-to" in tag_values(data)["h"].split(":")) == (reply_to is not None)
        unsigned = replace(signing, dkim_domain=None, dkim_selector=None,
                           dkim_private_key_file=None)
        expected = Renderer(unsigned).render(sample_digest(plain)).message_for(STEFAN).data
        theirs = tag_values(dkim.sign(expected, SELECTOR.encode(), DOMAIN.encode(),
                                      path.read_bytes(), canonicalize=(b"relaxed", b"relaxed"),
                                      include_headers=[b"from"]) + expected)
        assert data.endswith(expected) and tag_values(data)["bh"] == theirs["bh"]


def test_a_pkcs8_key_signs_like_the_pkcs1_one(key_pair: tuple[Path, bytes],
                                               tmp_path: Path) -> None:
    path, record = key_pair
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    pkcs8 = tmp_path / "dkim-pkcs8.pem"
    pkcs8.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    assert pkcs8.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    data = hand_built(BODIES["plain"], reply_to=False)
    signed = DkimSigner(DOMAIN, SELECTOR, pkcs8).sign(data)
    assert dkim.verify(signed, dnsfunc=fake_dns(record))
    assert signed == DkimSigner(DOMAIN, SELECTOR, path).sign(data)  # PKCS#1 v1.5: deterministic


def _write_key(path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
               encryption: serialization.KeySerializationEncryption) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8, encryption))
    return path


def test_keys_that_cannot_sign_are_config_errors_with_a_hint(key_pair: tuple[Path, bytes],
                                                             tmp_path: Path) -> None:
    path, _ = key_pair
    rsa_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    public = tmp_path / "public.pem"
    public.write_bytes(rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    text = tmp_path / "notes.txt"
    text.write_text("this is not a key\n")
    cases = {
        tmp_path / "absent.pem": "Cannot read the DKIM key",
        tmp_path: "Cannot read the DKIM key",  # a directory
        text: "cannot sign",
        public: "cannot sign",
        _write_key(tmp_path / "encrypted.pem", rsa_key,
                   serialization.BestAvailableEncryption(b"secret")): "cannot sign",
        _write_key(tmp_path / "ec.pem", ec.generate_private_key(ec.SECP256R1()),
                   serialization.NoEncryption()): "not an RSA key",
    }
    for key_file, message in cases.items():
        with pytest.raises(ConfigError, match=message) as caught:
            DkimSigner(DOMAIN, SELECTOR, key_file)
        assert caught.value.hint, key_file


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_512_bit_key_is_refused(tmp_path: Path) -> None:
    # cryptography will not generate a key this small, so openssl makes it.
    small = tmp_path / "small.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(small), "512"], check=True,
                   capture_output=True)
    with pytest.raises(ConfigError, match="512-bit"):
        DkimSigner(DOMAIN, SELECTOR, small)


def test_a_non_ascii_selector_is_a_config_error(key_pair: tuple[Path, bytes]) -> None:
    with pytest.raises(ConfigError, match="selector"):
        DkimSigner(DOMAIN, "selecție", key_pair[0])


def test_a_very_long_domain_still_folds_within_998(key_pair: tuple[Path, bytes]) -> None:
    path, record = key_pair
    domain = ".".join(["x" * 60] * 4)  # 243 characters: no line of 78 can hold d=
    data = hand_built(BODIES["plain"], reply_to=True)
    signed = DkimSigner(domain, SELECTOR, path).sign(data, has_reply_to=True)
    header = signed[:len(signed) - len(data)]
    assert max(len(line) for line in header.split(b"\r\n")) == len(f" d={domain};")
    assert tag_values(signed)["d"] == domain

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == f"{SELECTOR}._domainkey.{domain}.".encode() else None
    assert dkim.verify(signed, dnsfunc=lookup)
