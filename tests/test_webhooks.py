"""Provider webhooks on a real uvicorn: SES through SNS (the signing certificate served by a local
HTTPS server, SignatureVersion 1 and 2, SubscriptionConfirmation), Postmark, Mailgun and
SendGrid, each signed with keys made here. A valid call changes the reader; a forged, replayed
or unsigned one is answered 4xx and changes nothing."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.server
import json
import re
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import trustme
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from digest.config.feedback_settings import FeedbackSettings
from digest.config.settings import Settings
from digest.feedback.sns import SnsError, SnsVerifier, string_to_sign
from digest.store.models import BounceEvent, SubscriberStatus
from digest.web import create_app
from tests.conftest import free_port
from tests.web_support import add_reader, run_server, snapshot

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
MAILGUN_KEY = "key-" + "7" * 32
POSTMARK_TOKEN = "pm-" + "k" * 24
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC_PUBLIC = base64.b64encode(EC_KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


def _signing_cert() -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(RSA_KEY.public_key()).serial_number(1)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(RSA_KEY, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


class CertServer:
    """A local HTTPS server standing in for sns.<region>.amazonaws.com."""

    def __init__(self) -> None:
        ca = trustme.CA()
        self.client_context = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode())
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1").configure_cert(server_context)
        self.hits: list[str] = []
        pem, hits = _signing_cert(), self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                body = pem if self.path == "/cert.pem" else b"<ConfirmSubscriptionResponse/>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = server_context.wrap_socket(self.httpd.socket, server_side=True)
        self.origin = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def hooks(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[dict[str, Any]]:
    certs = CertServer()
    feedback = FeedbackSettings(postmark_token=POSTMARK_TOKEN, mailgun_signing_key=MAILGUN_KEY,
                                sendgrid_public_key=EC_PUBLIC, ses_topic_arns=(TOPIC,))
    configured = replace(settings, feedback=feedback)
    sns = SnsVerifier((TOPIC,), host_pattern=re.compile(r"127\.0\.0\.1"),
                      ssl_context=certs.client_context)
    app = create_app(configured, sessions=sessions, sns=sns)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    for email in ("ana@example.ro", "ion@example.ro", "dan@example.ro", "eva@example.ro"):
        add_reader(sessions, email)
    try:
        yield {"url": f"http://127.0.0.1:{port}", "certs": certs}
    finally:
        server.should_exit = True
        thread.join(10)
        certs.httpd.shutdown()


def _status(sessions: sessionmaker[Session], email: str) -> SubscriberStatus:
    return next(s["status"] for s in snapshot(sessions)["subscribers"] if s["email"] == email)


def _events(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(BounceEvent)) or 0)


def _sns(certs: CertServer, note: dict[str, Any] | None, version: str = "1",
         kind: str = "Notification", cert_url: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "Type": kind, "MessageId": str(uuid.uuid4()), "TopicArn": TOPIC,
        "Message": json.dumps(note) if note else "confirm", "SignatureVersion": version,
        "Timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "SigningCertURL": cert_url or f"{certs.origin}/cert.pem"}
    if kind == "SubscriptionConfirmation":
        message.update(Token="tok", SubscribeURL=f"{certs.origin}/confirm?Token=tok")
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = RSA_KEY.sign(string_to_sign(message), padding.PKCS1v15(), algorithm)
    message["Signature"] = base64.b64encode(signature).decode()
    return message


def _ses_bounce(email: str) -> dict[str, Any]:
    return {"notificationType": "Bounce", "bounce": {
        "bounceType": "Permanent", "bounceSubType": "General", "feedbackId": str(uuid.uuid4()),
        "bouncedRecipients": [{"emailAddress": email, "status": "5.1.1",
                               "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
        "mail": {"source": "stiri@example.ro", "headers": []}}


def test_ses_through_sns(hooks: dict[str, Any], sessions: sessionmaker[Session]) -> None:
    url, certs = hooks["url"] + "/webhooks/ses", hooks["certs"]
    confirm = _sns(certs, None, kind="SubscriptionConfirmation")
    assert httpx.post(url, content=json.dumps(confirm)).status_code == 200
    assert any(hit.startswith("/confirm?Token=tok") for hit in certs.hits)

    before = snapshot(sessions)
    good = _sns(certs, _ses_bounce("ana@example.ro"))
    forged = {**good, "Message": json.dumps(_ses_bounce("ion@example.ro"))}
    assert httpx.post(url, content=json.dumps(forged)).status_code == 403
    elsewhere = _sns(certs, _ses_bounce("ion@example.ro"),
                     cert_url="https://evil.example.com/cert.pem")
    assert httpx.post(url, content=json.dumps(elsewhere)).status_code == 403
    other_topic = _sns(certs, _ses_bounce("ion@example.ro"))
    other_topic["TopicArn"] = "arn:aws:sns:eu-west-1:999999999999:theirs"
    assert httpx.post(url, content=json.dumps(other_topic)).status_code == 403
    unsigned = {k: v for k, v in good.items() if k != "Signature"}
    assert httpx.post(url, content=json.dumps(unsigned)).status_code == 403
    assert snapshot(sessions) == before and _events(sessions) == 0

    answer = httpx.post(url, content=json.dumps(good))
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"][0]["action"] == "bounced"
    assert _status(sessions, "ana@example.ro") is SubscriberStatus.BOUNCED
    after = snapshot(sessions)
    assert httpx.post(url, content=json.dumps(good)).status_code == 409  # replayed
    assert snapshot(sessions) == after and _events(sessions) == 1

    complaint = {"notificationType": "Complaint", "complaint": {
        "complainedRecipients": [{"emailAddress": "ion@example.ro"}],
        "complaintFeedbackType": "abuse", "feedbackId": "c-1"}, "mail": {"headers": []}}
    v2 = httpx.post(url, content=json.dumps(_sns(certs, complaint, version="2")))
    assert v2.status_code == 200
    assert _status(sessions, "ion@example.ro") is SubscriberStatus.COMPLAINED


def test_production_accepts_only_sns_hosts() -> None:
    verifier = SnsVerifier((TOPIC,))
    for bad in ("http://sns.eu-west-1.amazonaws.com/c.pem", "https://127.0.0.1/c.pem",
                "https://sns.eu-west-1.amazonaws.com.evil.org/c.pem",
                "https://evil.org/sns.eu-west-1.amazonaws.com/c.pem"):
        with pytest.raises(SnsError):
            verifier._aws_url(bad, "SigningCertURL")
    assert verifier._aws_url("https://sns.eu-west-1.amazonaws.com/x.pem", "x")


def test_postmark_basic_auth(hooks: dict[str, Any], sessions: sessionmaker[Session]) -> None:
    url = hooks["url"] + "/webhooks/postmark"
    event = {"RecordType": "Bounce", "ID": 42, "Type": "HardBounce", "TypeCode": 1,
             "Email": "dan@example.ro", "Description": "The server was unable to deliver",
             "Details": "smtp;550 5.1.1 The email account does not exist"}
    before = snapshot(sessions)
    assert httpx.post(url, json=event).status_code == 401
    assert httpx.post(url, json=event, auth=("postmark", "wrong")).status_code == 401
    assert snapshot(sessions) == before
    answer = httpx.post(url, json=event, auth=("postmark", POSTMARK_TOKEN))
    assert answer.status_code == 200
    assert _status(sessions, "dan@example.ro") is SubscriberStatus.BOUNCED
    assert httpx.post(url, json=event, auth=("postmark", POSTMARK_TOKEN)).status_code == 409
    spam = {"RecordType": "SpamComplaint", "ID": 43, "Email": "eva@example.ro"}
    assert httpx.post(url, json=spam, auth=("x", POSTMARK_TOKEN)).status_code == 200
    assert _status(sessions, "eva@example.ro") is SubscriberStatus.COMPLAINED


def _mailgun(email: str, age: float = 0.0, token: str | None = None) -> dict[str, Any]:
    stamp, token = str(int(time.time() - age)), token or uuid.uuid4().hex
    signature = hmac.new(MAILGUN_KEY.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": stamp, "token": token, "signature": signature},
            "event-data": {"event": "failed", "severity": "permanent", "id": uuid.uuid4().hex,
                           "recipient": email, "delivery-status": {
                               "code": 550, "message": "5.1.1 No such user"}}}


def test_mailgun_hmac(hooks: dict[str, Any], sessions: sessionmaker[Session]) -> None:
    url = hooks["url"] + "/webhooks/mailgun"
    before = snapshot(sessions)
    forged = _mailgun("ana@example.ro")
    forged["signature"]["signature"] = "0" * 64
    assert httpx.post(url, json=forged).status_code == 403
    assert httpx.post(url, json=_mailgun("ana@example.ro", age=3600)).status_code == 403
    assert httpx.post(url, json={"event-data": {}}).status_code == 401
    assert snapshot(sessions) == before
    good = _mailgun("ana@example.ro")
    assert httpx.post(url, json=good).status_code == 200
    assert _status(sessions, "ana@example.ro") is SubscriberStatus.BOUNCED
    replay = _mailgun("ion@example.ro", token=good["signature"]["token"])
    assert httpx.post(url, json=replay).status_code == 409
    assert _status(sessions, "ion@example.ro") is SubscriberStatus.ACTIVE


def test_sendgrid_signed_event_webhook(hooks: dict[str, Any],
                                       sessions: sessionmaker[Session]) -> None:
    url = hooks["url"] + "/webhooks/sendgrid"
    events = [{"email": "dan@example.ro", "event": "bounce", "type": "bounce",
               "status": "5.1.1", "reason": "550 5.1.1 user unknown", "sg_event_id": "e1"},
              {"email": "eva@example.ro", "event": "spamreport", "sg_event_id": "e2"},
              {"email": "ion@example.ro", "event": "delivered", "sg_event_id": "e3"}]
    payload = json.dumps(events).encode()
    stamp = str(int(time.time()))
    signature = base64.b64encode(EC_KEY.sign(stamp.encode() + payload,
                                             ec.ECDSA(hashes.SHA256()))).decode()
    headers = {"X-Twilio-Email-Event-Webhook-Signature": signature,
               "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
               "Content-Type": "application/json"}
    before = snapshot(sessions)
    assert httpx.post(url, content=payload).status_code == 401
    tampered = payload.replace(b"dan@", b"ana@")
    assert httpx.post(url, content=tampered, headers=headers).status_code == 403
    assert snapshot(sessions) == before
    answer = httpx.post(url, content=payload, headers=headers)
    assert answer.status_code == 200 and answer.json()["processed"] == 2
    assert _status(sessions, "dan@example.ro") is SubscriberStatus.BOUNCED
    assert _status(sessions, "eva@example.ro") is SubscriberStatus.COMPLAINED
    assert _status(sessions, "ion@example.ro") is SubscriberStatus.ACTIVE
    assert httpx.post(url, content=payload, headers=headers).status_code == 409


def test_unconfigured_endpoints_are_404(settings: Settings,
                                        sessions: sessionmaker[Session]) -> None:
    with run_server(settings, sessions=sessions) as live:
        for name in ("ses", "postmark", "mailgun", "sendgrid"):
            assert httpx.post(f"{live.origin}/webhooks/{name}", json={}).status_code == 404
