"""Provider webhook payloads -> ``Report`` s (pure): Amazon SES (inside SNS), Postmark, Mailgun,
SendGrid. Authentication is not here (``signatures``, ``sns``); these functions trust their
input and only translate it. Each report's key is the provider's own event id, so a delivery
retried by the provider is recorded once.

Kinds follow ``digest.feedback.status`` where the provider gives a status code; otherwise the
provider's own word: SES ``Permanent`` -> hard, ``Transient`` -> soft; Postmark ``HardBounce``
-> hard, ``SoftBounce``/``Transient``/``DnsError`` -> soft, ``SpamComplaint`` -> complaint,
``AutoResponder`` -> auto-reply; Mailgun ``failed`` with severity permanent/temporary, and
``complained``; SendGrid ``bounce`` (``type`` bounce/blocked) and ``spamreport``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from digest.feedback.report import Finding, Kind, Report, Source
from digest.feedback.status import classify, find_status

__all__ = ["mailgun_report", "postmark_report", "sendgrid_reports", "ses_report"]


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _overall(findings: Iterable[Finding]) -> Kind:
    kinds = {f.kind for f in findings}
    for kind in (Kind.COMPLAINT, Kind.HARD, Kind.SOFT, Kind.POLICY, Kind.AUTO_REPLY):
        if kind in kinds:
            return kind
    return Kind.UNRECOGNIZED


def _report(source: Source, key: str, findings: list[Finding], message_ids: Iterable[str] = (),
            return_paths: Iterable[str] = ()) -> Report:
    real = [f for f in findings if f.kind not in (Kind.AUTO_REPLY, Kind.UNRECOGNIZED)]
    return Report(_overall(findings), source, key[:200], tuple(real), tuple(return_paths),
                  tuple(m for m in message_ids if m))


def _kind(status: str | None, words: str, permanent: bool) -> Kind:
    return classify(status, words, permanent=permanent) or (Kind.HARD if permanent else Kind.SOFT)


def ses_report(note: dict[str, Any], key: str) -> Report:
    """An SES notification (``notificationType`` or event publishing's ``eventType``)."""
    kind = _s(note.get("notificationType") or note.get("eventType"))
    mail = note.get("mail") or {}
    ids = [_s(h.get("value")) for h in mail.get("headers") or []
           if _s(h.get("name")).lower() == "message-id"]
    paths = [_s(mail.get("source"))]
    if kind == "Bounce":
        bounce = note.get("bounce") or {}
        permanent = _s(bounce.get("bounceType")) == "Permanent"
        key = _s(bounce.get("feedbackId")) or key
        findings = []
        for r in bounce.get("bouncedRecipients") or []:
            words = _s(r.get("diagnosticCode"))
            status = find_status(_s(r.get("status")), words)
            findings.append(Finding(_s(r.get("emailAddress")), _kind(status, words, permanent),
                                    status, words or _s(bounce.get("bounceSubType")) or None))
        return _report(Source.SES, key, findings, ids, paths)
    if kind == "Complaint":
        complaint = note.get("complaint") or {}
        key = _s(complaint.get("feedbackId")) or key
        detail = f"feedback-type={_s(complaint.get('complaintFeedbackType')) or 'abuse'}"
        if _s(complaint.get("complaintFeedbackType")) == "not-spam":
            return _report(Source.SES, key, [])
        findings = [Finding(_s(r.get("emailAddress")), Kind.COMPLAINT, None, detail)
                    for r in complaint.get("complainedRecipients") or []]
        return _report(Source.SES, key, findings, ids, paths)
    return _report(Source.SES, key, [])  # Delivery, Send, Open...: nothing to do


_POSTMARK = {"HardBounce": Kind.HARD, "BadEmailAddress": Kind.HARD,
             "ManuallyDeactivated": Kind.HARD, "SoftBounce": Kind.SOFT, "Transient": Kind.SOFT,
             "DnsError": Kind.SOFT, "SpamNotification": Kind.POLICY, "Blocked": Kind.POLICY,
             "ContentRelated": Kind.POLICY, "SpamComplaint": Kind.COMPLAINT,
             "AutoResponder": Kind.AUTO_REPLY}


def postmark_report(event: dict[str, Any]) -> Report:
    """A Postmark bounce or spam-complaint webhook."""
    key = f"postmark:{_s(event.get('ID')) or _s(event.get('MessageID'))}"
    record = _s(event.get("RecordType"))
    if record == "SpamComplaint":
        kind = Kind.COMPLAINT
    elif record == "Bounce":
        kind = _POSTMARK.get(_s(event.get("Type")), Kind.UNRECOGNIZED)
    else:
        return _report(Source.POSTMARK, key, [])
    words = " ".join(_s(event.get(k)) for k in ("Description", "Details")).strip()
    status = find_status(words)
    if kind in (Kind.HARD, Kind.SOFT) and status:
        kind = classify(status, words) or kind
    finding = Finding(_s(event.get("Email")), kind, status, words or _s(event.get("Type")))
    return _report(Source.POSTMARK, key, [finding])


def mailgun_report(body: dict[str, Any]) -> Report:
    """A Mailgun webhook (``event-data`` of a failed or complained event)."""
    data = body.get("event-data") or {}
    key = f"mailgun:{_s(data.get('id'))}"
    event = _s(data.get("event"))
    message = data.get("message") or {}
    ids = [f"<{_s((message.get('headers') or {}).get('message-id')).strip('<>')}>"]
    recipient = _s(data.get("recipient"))
    if event == "complained":
        return _report(Source.MAILGUN, key, [Finding(recipient, Kind.COMPLAINT, None,
                                                     "feedback-type=abuse")], ids)
    if event != "failed":
        return _report(Source.MAILGUN, key, [])
    status_info = data.get("delivery-status") or {}
    words = " ".join(_s(status_info.get(k)) for k in ("code", "message", "description")).strip()
    status = find_status(_s(status_info.get("enhanced-code")), words)
    permanent = _s(data.get("severity")) == "permanent"
    finding = Finding(recipient, _kind(status, words, permanent), status,
                      words or _s(data.get("reason")) or None)
    return _report(Source.MAILGUN, key, [finding], ids)


def sendgrid_reports(events: list[dict[str, Any]]) -> list[Report]:
    """SendGrid's event webhook: a JSON array of events, one report per bounce or complaint."""
    reports = []
    for event in events:
        kind = _s(event.get("event"))
        key = f"sendgrid:{_s(event.get('sg_event_id'))}"
        recipient = _s(event.get("email"))
        ids = [_s(event.get("smtp-id"))]
        if kind == "spamreport":
            reports.append(_report(Source.SENDGRID, key, [Finding(
                recipient, Kind.COMPLAINT, None, "feedback-type=abuse")], ids))
        elif kind in ("bounce", "blocked"):
            words = _s(event.get("reason"))
            status = find_status(_s(event.get("status")), words)
            blocked = kind == "blocked" or _s(event.get("type")) == "blocked"
            found = Kind.POLICY if blocked else _kind(status, words, permanent=True)
            reports.append(_report(Source.SENDGRID, key, [Finding(recipient, found, status,
                                                                  words or None)], ids))
        # "deferred" is left out: SendGrid sends one per retry, and a later bounce settles it.
    return reports
