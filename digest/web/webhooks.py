"""Provider webhooks: ``POST /webhooks/ses`` (Amazon SES through SNS), ``/webhooks/postmark``,
``/webhooks/mailgun`` and ``/webhooks/sendgrid``.

Each endpoint is off (404) until its key is configured, and authenticates its caller before
reading anything (``digest.feedback.signatures``, ``digest.feedback.sns``): an unsigned or
forged call is answered 401/403, a replayed one (an old timestamp, a token or message seen
before) 409 -- and none of them changes anything. An authentic call becomes ``Report`` s for
the one processor every bounce goes through, so a provider's retry changes nothing twice.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from digest.feedback.processor import process_report
from digest.feedback.providers import (
    mailgun_report,
    postmark_report,
    sendgrid_reports,
    ses_report,
)
from digest.feedback.report import Report
from digest.feedback.signatures import (
    ReplayGuard,
    basic_auth_password,
    mailgun_valid,
    sendgrid_valid,
)
from digest.feedback.sns import SnsError, SnsVerifier
from digest.web.context import web_context

__all__ = ["Webhooks", "routes"]

MAX_BODY = 1_000_000  # bytes; providers send a few KB


class Webhooks:
    """Per-app webhook state: the SNS verifier (a test may give its own) and the replay guard."""

    def __init__(self, sns: SnsVerifier) -> None:
        self.sns = sns
        self.replays = ReplayGuard()


def _refuse(status: int, why: str) -> JSONResponse:
    return JSONResponse({"error": why}, status_code=status)


async def _body(request: Request) -> bytes | None:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _object(request: Request, what: str) -> dict[str, Any] | JSONResponse:
    """The body as a JSON object, or the 4xx answer saying why not."""
    raw = await _body(request)
    if raw is None:
        return _refuse(413, "body too large")
    try:
        parsed = json.loads(raw)
    except ValueError:
        return _refuse(400, "the body is not JSON")
    return parsed if isinstance(parsed, dict) else _refuse(400, f"not {what}")


def _hooks(request: Request) -> Webhooks:
    hooks = request.app.state.webhooks
    assert isinstance(hooks, Webhooks)
    return hooks


async def _process(request: Request, reports: list[Report]) -> JSONResponse:
    ctx = web_context(request)
    actions = []
    for report in reports:
        done = await ctx.db(process_report, ctx.sessions, ctx.settings, report, ctx.clock)
        actions.append({"kind": report.kind.shown, "action": done.action.value,
                        "recipient": done.recipient})
    return JSONResponse({"processed": len(reports), "results": actions})


async def ses(request: Request) -> JSONResponse:
    hooks = _hooks(request)
    if not hooks.sns.topic_arns:
        return _refuse(404, "not configured")
    message = await _object(request, "an SNS message")
    if isinstance(message, JSONResponse):
        return message
    try:
        await web_context(request).db(hooks.sns.verify, message)
    except SnsError as exc:
        return _refuse(403, str(exc))
    if not hooks.replays.first_time(f"sns:{message.get('MessageId')}"):
        return _refuse(409, "this message was delivered before")
    kind = message.get("Type")
    if kind == "SubscriptionConfirmation":
        try:
            await web_context(request).db(hooks.sns.confirm, message)
        except SnsError as exc:
            return _refuse(403, str(exc))
        return JSONResponse({"confirmed": message.get("TopicArn")})
    if kind != "Notification":
        return JSONResponse({"processed": 0})
    try:
        note = json.loads(str(message.get("Message", "")))
    except ValueError:
        return _refuse(400, "the SNS Message is not an SES notification")
    if not isinstance(note, dict):
        return _refuse(400, "the SNS Message is not an SES notification")
    return await _process(request, [ses_report(note, f"sns:{message.get('MessageId')}")])


async def postmark(request: Request) -> JSONResponse:
    token = web_context(request).settings.feedback.postmark_token
    if not token:
        return _refuse(404, "not configured")
    given = basic_auth_password(request.headers.get("authorization"))
    if given is None or not hmac.compare_digest(given.encode(), token.encode()):
        return _refuse(401, "wrong or missing credentials")
    event = await _object(request, "a Postmark event")
    if isinstance(event, JSONResponse):
        return event
    report = postmark_report(event)
    if not _hooks(request).replays.first_time(report.key):
        return _refuse(409, "this event was delivered before")
    return await _process(request, [report])


async def mailgun(request: Request) -> JSONResponse:
    key = web_context(request).settings.feedback.mailgun_signing_key
    if not key:
        return _refuse(404, "not configured")
    body = await _object(request, "a Mailgun event")
    if isinstance(body, JSONResponse):
        return body
    signature = body.get("signature")
    if not isinstance(signature, dict):
        return _refuse(401, "no signature")
    stamp, token = str(signature.get("timestamp", "")), str(signature.get("token", ""))
    if not mailgun_valid(key, stamp, token, str(signature.get("signature", ""))):
        return _refuse(403, "bad or expired signature")
    if not _hooks(request).replays.first_time(f"mailgun:{token}"):
        return _refuse(409, "this token was used before")
    return await _process(request, [mailgun_report(body)])


async def sendgrid(request: Request) -> JSONResponse:
    key = web_context(request).settings.feedback.sendgrid_public_key
    if not key:
        return _refuse(404, "not configured")
    raw = await _body(request)
    if raw is None:
        return _refuse(413, "body too large")
    signature = request.headers.get("x-twilio-email-event-webhook-signature", "")
    stamp = request.headers.get("x-twilio-email-event-webhook-timestamp", "")
    if not signature or not stamp:
        return _refuse(401, "no signature")
    if not sendgrid_valid(key, signature, stamp, raw):
        return _refuse(403, "bad or expired signature")
    if not _hooks(request).replays.first_time(f"sendgrid:{signature}"):
        return _refuse(409, "this call was delivered before")
    try:
        events = json.loads(raw)
    except ValueError:
        return _refuse(400, "the body is not JSON")
    if not isinstance(events, list):
        return _refuse(400, "expected a JSON array of events")
    return await _process(request, sendgrid_reports([e for e in events if isinstance(e, dict)]))


routes = [
    Route("/webhooks/ses", ses, methods=["POST"]),
    Route("/webhooks/postmark", postmark, methods=["POST"]),
    Route("/webhooks/mailgun", mailgun, methods=["POST"]),
    Route("/webhooks/sendgrid", sendgrid, methods=["POST"]),
]
