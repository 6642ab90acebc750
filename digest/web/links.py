"""The links in every email: confirm, unsubscribe (also the RFC 8058 one-click target).

GET only shows a page with a button, because mail scanners and link previewers open links; POST
acts, and acting twice is the same as acting once. A token that is tampered with, meant for
another purpose, expired or for a subscriber who no longer exists gets the same 400 page, which
names nobody and changes nothing.

``POST /unsubscribe/{token}`` is what mailbox providers call when the reader presses their
"Unsubscribe" button (``List-Unsubscribe-Post: List-Unsubscribe=One-Click``): no cookie, no CSRF
token, any body (urlencoded, multipart or none), always 200 with a page, never a redirect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from digest.readers.lifecycle import Origin, confirm, unsubscribe
from digest.render.i18n import N_
from digest.render.tokens import InvalidToken, Purpose, read_token
from digest.store.models import Frequency, Subscriber, SubscriberStatus
from digest.web.context import WebContext, web_context
from digest.web.security import read_form

__all__ = ["BAD_LINK", "LinkedReader", "load_view", "origin_of", "reader_id", "routes"]

BAD_LINK = N_("This link does not work. It may have been cut short when it was copied, or it "
              "is too old. Use the link in the most recent email, or sign up again.")

_OUT = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)


@dataclass(frozen=True)
class LinkedReader:
    """What the pages show about a reader: plain values, read in one short session."""

    id: int
    email: str
    name: str | None
    status: SubscriberStatus
    topics: list[str]
    frequency: Frequency
    plain_text_only: bool
    locale: str | None = None
    send_hour: int | None = None  # None: DIGEST_SEND_HOUR
    timezone: str | None = None


def _view(sub: Subscriber) -> LinkedReader:
    return LinkedReader(sub.id, sub.email, sub.name, sub.status, list(sub.topics), sub.frequency,
                        sub.plain_text_only, sub.locale, sub.send_hour, sub.timezone)


def load_view(sessions: sessionmaker[Session], subscriber_id: int) -> LinkedReader | None:
    with sessions() as session:
        sub = session.get(Subscriber, subscriber_id)
        return _view(sub) if sub is not None else None


def reader_id(ctx: WebContext, purpose: Purpose, token: str) -> int:
    """The subscriber id in ``token``, or the 400 page."""
    now = ctx.clock() if purpose is Purpose.CONFIRM else None
    try:
        return read_token(ctx.secret, purpose, token, now=now)
    except InvalidToken:
        raise HTTPException(400, BAD_LINK) from None


async def reader(ctx: WebContext, purpose: Purpose, token: str) -> LinkedReader:
    view = await ctx.db(load_view, ctx.sessions, reader_id(ctx, purpose, token))
    if view is None:  # erased: the token was genuine, but there is nobody to show
        raise HTTPException(400, BAD_LINK)
    return view


def origin_of(request: Request, source: str, detail: str) -> Origin:
    ip = request.client.host if request.client else None
    return Origin(source, ip, request.headers.get("user-agent"), detail)


def _apply(sessions: sessionmaker[Session], subscriber_id: int, origin: Origin,
           action: Callable[[Session, Subscriber, Origin], bool]) -> LinkedReader | None:
    """Run one idempotent lifecycle step (confirm, unsubscribe) in its own transaction."""
    with sessions.begin() as session:
        sub = session.get(Subscriber, subscriber_id)
        if sub is None:
            return None
        action(session, sub, origin)
        return _view(sub)


def _confirmed_page(ctx: WebContext, request: Request, view: LinkedReader) -> Response:
    lang = ctx.language(request, view.locale)
    return ctx.render("confirmed.html.j2", lang=lang, private=True,
                      title=lang.gettext("Subscription confirmed"), reader=view,
                      preferences=ctx.path("preferences", ctx.token(Purpose.PREFERENCES, view.id)))


async def confirm_page(request: Request) -> Response:
    ctx = web_context(request)
    view = await reader(ctx, Purpose.CONFIRM, request.path_params["token"])
    if view.status is SubscriberStatus.ACTIVE:
        return _confirmed_page(ctx, request, view)
    if view.status is not SubscriberStatus.PENDING:
        # Left since (or bounced): an old confirmation link must not bring them back.
        raise HTTPException(400, BAD_LINK)
    lang = ctx.language(request, view.locale)
    return ctx.render("confirm.html.j2", lang=lang, private=True,
                      title=lang.gettext("Confirm your subscription"), reader=view)


async def confirm_post(request: Request) -> Response:
    ctx = web_context(request)
    subscriber_id = reader_id(ctx, Purpose.CONFIRM, request.path_params["token"])
    view = await ctx.db(_apply, ctx.sessions, subscriber_id,
                        origin_of(request, "web", "confirmation page"), confirm)
    if view is None or view.status is not SubscriberStatus.ACTIVE:
        raise HTTPException(400, BAD_LINK)
    return _confirmed_page(ctx, request, view)


def _unsubscribed_page(ctx: WebContext, request: Request, view: LinkedReader) -> Response:
    lang = ctx.language(request, view.locale)
    return ctx.render("unsubscribed.html.j2", lang=lang, private=True,
                      title=lang.gettext("You are unsubscribed"), reader=view, signup=ctx.path(""),
                      preferences=ctx.path("preferences", ctx.token(Purpose.PREFERENCES, view.id)))


async def unsubscribe_page(request: Request) -> Response:
    ctx = web_context(request)
    view = await reader(ctx, Purpose.UNSUBSCRIBE, request.path_params["token"])
    if view.status in _OUT:
        return _unsubscribed_page(ctx, request, view)
    lang = ctx.language(request, view.locale)
    return ctx.render("unsubscribe.html.j2", lang=lang, private=True,
                      title=lang.gettext("Unsubscribe"), reader=view,
                      preferences=ctx.path("preferences", ctx.token(Purpose.PREFERENCES, view.id)))


async def unsubscribe_post(request: Request) -> Response:
    ctx = web_context(request)
    subscriber_id = reader_id(ctx, Purpose.UNSUBSCRIBE, request.path_params["token"])
    try:
        form = await read_form(request)
        one_click = form.get("List-Unsubscribe") == "One-Click"
    except HTTPException:  # an odd body must not stop anyone from leaving
        one_click = False
    origin = (origin_of(request, "one-click", "List-Unsubscribe=One-Click") if one_click
              else origin_of(request, "web", "unsubscribe page"))
    view = await ctx.db(_apply, ctx.sessions, subscriber_id, origin, unsubscribe)
    if view is None:
        raise HTTPException(400, BAD_LINK)
    return _unsubscribed_page(ctx, request, view)


routes = [
    Route("/confirm/{token}", confirm_page, methods=["GET"]),
    Route("/confirm/{token}", confirm_post, methods=["POST"]),
    Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
    Route("/unsubscribe/{token}", unsubscribe_post, methods=["POST"]),
]
