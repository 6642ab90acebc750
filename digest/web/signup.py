"""Sign-up with double opt-in: ``GET /`` shows the form, ``POST /subscribe`` handles it.

The answer is the same "check your inbox" page whatever state the address is in, so the form
cannot be used to find out who subscribes:

- new address: a pending subscriber with a SUBSCRIBE consent event, then a confirmation email;
- pending: the confirmation is sent again, at most once per ``RESEND_AFTER``;
- active: nothing is sent (an "already subscribed" email would let anyone mail a reader);
- unsubscribed: a fresh sign-up: back to pending, a RESUBSCRIBE event, a confirmation email;
- erased/suppressed, bounced or complained: nothing happens.

The subscriber is stored first, in its own transaction; the email is sent after the response
(a background task, so answer time does not reveal the state either) with no transaction open;
``confirmation_sent_at`` is recorded only when the server accepted the message. A failed send
is logged and leaves a pending subscriber whose next sign-up attempt re-sends at once.

The publication can embed the form on its own pages (the "News To Your Inbox" box)::

    <form method="post" action="https://news.example.ro/digest/subscribe">
      <input type="hidden" name="form" value="site-box">
      <input type="email" name="email" required> <button>Subscribe</button>
    </form>
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from digest.config.errors import InvalidInput
from digest.config.locales import language_of
from digest.config.settings import Settings
from digest.readers.addresses import accept_address, clean_text
from digest.readers.lifecycle import (
    Origin,
    add_subscriber,
    find_subscriber,
    is_suppressed,
    record_event,
)
from digest.render.i18n import Language, language
from digest.store.models import Article, ConsentKind, Feed, Subscriber, SubscriberStatus
from digest.topics import parse_topics
from digest.web.confirmation import send_confirmation
from digest.web.context import WebContext, web_context
from digest.web.security import HONEYPOT_FIELD, honeypot_filled, read_form

__all__ = ["RESEND_AFTER", "consent_text", "load_topics", "routes", "site_topics"]

log = logging.getLogger(__name__)

RESEND_AFTER = dt.timedelta(hours=1)
_FORM_NAME = re.compile(r"^[a-z0-9_-]{1,40}$")
_RECENT_ARTICLES = 500


def consent_text(settings: Settings, lang: Language | None = None) -> str:
    """The sentence shown next to the button, in the page's language; stored verbatim as
    consent evidence (so the record shows what the reader read)."""
    lang = lang or language(settings.locale)
    return lang.gettext(
        "Send me the %(site)s email digest. We don't spam: one email a day or a week, and every "
        "email has a one-click unsubscribe link. Privacy notice: %(privacy)s",
        site=settings.site_name, privacy=settings.privacy_url)


def site_topics(session: Session) -> list[str]:
    """Topics a reader can choose: those of the feeds and of recent articles."""
    topics: set[str] = set()
    for feed_topics in session.scalars(select(Feed.topics)):
        topics.update(feed_topics or [])
    recent = select(Article.topics).order_by(Article.published_at.desc()).limit(_RECENT_ARTICLES)
    for article_topics in session.scalars(recent):
        topics.update(article_topics or [])
    return parse_topics(topics)


def load_topics(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return site_topics(session)


@dataclass(frozen=True)
class SignupForm:
    email: str
    name: str | None
    topics: list[str]
    form_name: str
    locale: str


@dataclass(frozen=True)
class Recipient:
    """Who to send a confirmation to: plain values, so no ORM object outlives its session."""

    id: int
    email: str
    name: str | None
    locale: str | None = None


def store_signup(sessions: sessionmaker[Session], form: SignupForm, origin: Origin,
                 now: dt.datetime) -> Recipient | None:
    """Record the sign-up; return who needs a confirmation email now (or None)."""
    try:
        with sessions.begin() as session:
            return _apply_signup(session, form, origin, now)
    except IntegrityError:
        # The same address signed up twice at the same instant: the other request won, and it
        # sends the confirmation.
        return None


def _apply_signup(session: Session, form: SignupForm, origin: Origin,
                  now: dt.datetime) -> Recipient | None:
    if is_suppressed(session, form.email):
        return None
    sub = find_subscriber(session, form.email)
    if sub is None:
        sub = add_subscriber(session, form.email, name=form.name, topics=form.topics,
                             locale=form.locale, status=SubscriberStatus.PENDING,
                             origin=origin,
                             allow_reserved=True)  # form.email passed accept_address already
    elif sub.status is SubscriberStatus.PENDING:
        if sub.confirmation_sent_at is not None and now - sub.confirmation_sent_at < RESEND_AFTER:
            return None
    elif sub.status is SubscriberStatus.UNSUBSCRIBED:
        sub.status = SubscriberStatus.PENDING
        sub.confirmation_sent_at = None
        sub.name = form.name or sub.name
        sub.locale = form.locale
        if form.topics:
            sub.topics = form.topics
        record_event(session, sub, ConsentKind.RESUBSCRIBE, origin, at=now)
    else:  # active, bounced, complained
        return None
    session.flush()
    return Recipient(sub.id, sub.email, sub.name, sub.locale)


def record_sent(sessions: sessionmaker[Session], subscriber_id: int, at: dt.datetime) -> None:
    with sessions.begin() as session:
        sub = session.get(Subscriber, subscriber_id)
        if sub is not None:
            sub.confirmation_sent_at = at


async def deliver_confirmation(ctx: WebContext, recipient: Recipient) -> None:
    """Send the confirmation (after the response); record success, log failure."""
    if recipient.id in ctx.sending:
        return
    ctx.sending.add(recipient.id)
    try:
        now = ctx.clock()
        reply = await send_confirmation(ctx.settings, subscriber_id=recipient.id,
                                        email=recipient.email, name=recipient.name, now=now,
                                        locale=recipient.locale)
        await ctx.db(record_sent, ctx.sessions, recipient.id, now)
        log.info("confirmation sent to subscriber %d: %s", recipient.id, reply)
    except Exception as exc:  # any failure: keep the sign-up, tell the operator
        # The address is personal data: log the id only.
        log.warning("confirmation to subscriber %d not sent (%s: %s); the next sign-up attempt "
                    "retries", recipient.id, type(exc).__name__, exc)
    finally:
        ctx.sending.discard(recipient.id)


def _parse(ctx: WebContext, fields: dict[str, list[str]], allowed: list[str],
           lang: Language) -> SignupForm:
    raw = (fields.get("email") or [""])[0]
    if not raw.rpartition("@")[0].isascii():
        raise InvalidInput(lang.gettext("Addresses with non-Latin letters before the @ are not "
                                        "supported yet."), "use another address")
    try:  # the one address rule of every way in (CLI, CSV import, this form)
        email = accept_address(raw, allow_reserved=ctx.settings.allow_reserved_domains)
    except InvalidInput as exc:  # its message is for operators; readers get theirs
        raise InvalidInput(lang.gettext("This is not a valid email address. Check it and try "
                                        "again."), exc.hint) from exc
    name = " ".join((clean_text((fields.get("name") or [""])[0]) or "").split())[:200] or None
    topics = [t for t in parse_topics(fields.get("topics") or []) if t in allowed]
    form_name = (fields.get("form") or ["web"])[0].strip().lower()
    # The form's language field, else the page's (the browser's Accept-Language).
    locale = language_of((fields.get("locale") or [""])[0]) or lang.code
    return SignupForm(email, name, topics, form_name if _FORM_NAME.match(form_name) else "web",
                      locale)


def _form_page(ctx: WebContext, lang: Language, topics: list[str], status: int = 200, *,
               error: str = "", email: str = "", name: str = "") -> Response:
    return ctx.render("subscribe.html.j2", status, lang=lang, title=lang.gettext("Subscribe"),
                      topics=topics, consent=consent_text(ctx.settings, lang),
                      honeypot=HONEYPOT_FIELD,
                      action=ctx.path("subscribe"), error=error, email=email, name=name)


async def show_form(request: Request) -> Response:
    ctx = web_context(request)
    topics = await ctx.db(load_topics, ctx.sessions)
    return _form_page(ctx, ctx.language(request), topics)


async def subscribe(request: Request) -> Response:
    ctx = web_context(request)
    ip = request.client.host if request.client else None
    wait = ctx.limiter.hit(ip or "unknown")
    lang = ctx.language(request)
    if wait:
        return ctx.render("error.html.j2", 429, lang=lang,
                          headers={"Retry-After": str(int(wait) + 1)},
                          title=lang.gettext("Too many sign-ups"), code=429,
                          message=lang.gettext("Too many sign-ups came from your network in the "
                                               "last few minutes. Please wait a while and try "
                                               "again."))
    form = await read_form(request)
    # The chosen language, if the form has one, else the browser's: the answer is in it.
    lang = ctx.language(request, str(form.get("locale") or "") or None)
    thanks = ctx.render("thanks.html.j2", lang=lang, title=lang.gettext("Check your inbox"))
    if honeypot_filled(form):
        return thanks
    fields = {key: [v for v in form.getlist(key) if isinstance(v, str)] for key in form}
    topics = await ctx.db(load_topics, ctx.sessions)
    try:
        signup = _parse(ctx, fields, topics, lang)
    except InvalidInput as exc:
        return _form_page(ctx, lang, topics, 400, error=exc.message,
                          email=(fields.get("email") or [""])[0][:320],
                          name=(fields.get("name") or [""])[0][:200])
    origin = Origin("web", ip, request.headers.get("user-agent"),
                    f"form={signup.form_name}; consent={consent_text(ctx.settings, lang)}")
    recipient = await ctx.db(store_signup, ctx.sessions, signup, origin, ctx.clock())
    if recipient is not None:
        thanks.background = BackgroundTask(deliver_confirmation, ctx, recipient)
    return thanks


routes = [
    Route("/", show_form, methods=["GET"]),
    Route("/subscribe", show_form, methods=["GET"]),
    Route("/subscribe", subscribe, methods=["POST"]),
]
