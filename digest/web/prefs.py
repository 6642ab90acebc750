"""``/preferences/{token}``: a reader's own settings and data.

GET shows the form, in the reader's language; POST saves topics, frequency, language, the
local hour the digest goes out and plain-text-only (a PREFERENCES consent event records what
changed). ``POST .../data`` downloads everything stored about the reader as JSON, consent
history included; ``POST .../delete`` (with its "yes" box ticked) erases the reader and keeps
only a suppression hash so the address is never mailed again.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from digest.config.errors import InvalidInput
from digest.config.locales import language_of
from digest.readers.fields import parse_send_hour
from digest.readers.lifecycle import Origin, erase, personal_data, update_preferences
from digest.render.i18n import N_
from digest.render.tokens import Purpose
from digest.store.models import Frequency, Subscriber
from digest.topics import parse_topics
from digest.web.context import NO_STORE, WebContext, web_context
from digest.web.links import BAD_LINK, LinkedReader, load_view, origin_of, reader, reader_id
from digest.web.security import read_form
from digest.web.signup import load_topics

__all__ = ["routes"]


def _save(sessions: sessionmaker[Session], subscriber_id: int, origin: Origin,
          topics: list[str], frequency: Frequency, plain: bool, locale: str | None,
          hour: int | None) -> bool:
    with sessions.begin() as session:
        sub = session.get(Subscriber, subscriber_id)
        if sub is None:
            return False
        update_preferences(session, sub, origin, topics=topics, frequency=frequency,
                           plain_text_only=plain, locale=locale, send_hour=hour)
        return True


def _data(sessions: sessionmaker[Session], subscriber_id: int) -> dict[str, Any] | None:
    with sessions() as session:
        sub = session.get(Subscriber, subscriber_id)
        return personal_data(session, sub) if sub is not None else None


def _erase(sessions: sessionmaker[Session], subscriber_id: int, origin: Origin) -> bool:
    with sessions.begin() as session:
        sub = session.get(Subscriber, subscriber_id)
        if sub is None:
            return False
        erase(session, sub, origin)
        return True


async def _page(ctx: WebContext, request: Request, view: LinkedReader, status: int = 200, *,
                notice: str = "", error: str = "") -> Response:
    topics = sorted(set(await ctx.db(load_topics, ctx.sessions)) | set(view.topics))
    base = ctx.path("preferences", ctx.token(Purpose.PREFERENCES, view.id))
    lang = ctx.language(request, view.locale)
    return ctx.render("preferences.html.j2", status, lang=lang, private=True,
                      title=lang.gettext("Your preferences"),
                      reader=view, topics=topics, frequencies=list(Frequency), action=base,
                      hours=range(24), default_hour=ctx.settings.send_hour,
                      zone=view.timezone or ctx.settings.timezone.key,
                      data_action=f"{base}/data", delete_action=f"{base}/delete",
                      notice=lang.gettext(notice) if notice else "",
                      error=lang.gettext(error) if error else "",
                      unsubscribe=ctx.path("unsubscribe", ctx.token(Purpose.UNSUBSCRIBE, view.id)))


def _frequency(form: FormData) -> Frequency:
    try:
        return Frequency(str(form.get("frequency", "")))
    except ValueError:
        raise HTTPException(400, N_("Choose how often you want the digest.")) from None


def _send_hour(form: FormData) -> int | None:
    """The hour picked, or None for "the publication's hour" (the empty choice)."""
    try:
        return parse_send_hour(str(form.get("send_hour", "")))
    except InvalidInput:
        raise HTTPException(400, N_("Choose an hour from the list.")) from None


async def show(request: Request) -> Response:
    ctx = web_context(request)
    view = await reader(ctx, Purpose.PREFERENCES, request.path_params["token"])
    return await _page(ctx, request, view)


async def save(request: Request) -> Response:
    ctx = web_context(request)
    view = await reader(ctx, Purpose.PREFERENCES, request.path_params["token"])
    form = await read_form(request)
    allowed = set(await ctx.db(load_topics, ctx.sessions)) | set(view.topics)
    topics = [t for t in parse_topics([str(t) for t in form.getlist("topics")]) if t in allowed]
    saved = await ctx.db(_save, ctx.sessions, view.id,
                         origin_of(request, "web", "preferences page"), topics,
                         _frequency(form), form.get("plain_text_only") == "1",
                         language_of(str(form.get("locale", ""))), _send_hour(form))
    fresh = await ctx.db(load_view, ctx.sessions, view.id) if saved else None
    if fresh is None:
        raise HTTPException(400, BAD_LINK)
    return await _page(ctx, request, fresh, notice=N_("Your preferences are saved."))


async def download(request: Request) -> Response:
    ctx = web_context(request)
    data = await ctx.db(_data, ctx.sessions,
                        reader_id(ctx, Purpose.PREFERENCES, request.path_params["token"]))
    if data is None:
        raise HTTPException(400, BAD_LINK)
    body = json.dumps(data, ensure_ascii=False, indent=2)
    return Response(body, media_type="application/json", headers={
        **NO_STORE, "Content-Disposition": 'attachment; filename="my-digest-data.json"'})


async def delete(request: Request) -> Response:
    ctx = web_context(request)
    view = await reader(ctx, Purpose.PREFERENCES, request.path_params["token"])
    form = await read_form(request)
    if form.get("confirm") != "yes":
        return await _page(ctx, request, view, 400, error=N_(
            "Tick the box to confirm that everything about you should be deleted."))
    await ctx.db(_erase, ctx.sessions, view.id, origin_of(request, "web", "preferences page"))
    lang = ctx.language(request, view.locale)
    return ctx.render("deleted.html.j2", lang=lang, private=True,
                      title=lang.gettext("Your data is deleted"), signup=ctx.path(""))


routes = [
    Route("/preferences/{token}", show, methods=["GET"]),
    Route("/preferences/{token}", save, methods=["POST"]),
    Route("/preferences/{token}/data", download, methods=["POST"]),
    Route("/preferences/{token}/delete", delete, methods=["POST"]),
]
