"""Pages about the publication rather than a reader: the privacy notice, the archive of past
editions (the "view in browser" target), the stylesheet, and ``/healthz`` for monitors.

The archive shows an edition's non-personalised article list (``Edition.article_ids``, fixed when
the edition was planned) with plain-text summaries and no images: nothing on these pages loads
from a third party, so reading the archive tells nobody else anything.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from digest.store.models import Article, Edition, Frequency
from digest.web.context import web_context

__all__ = ["PAGE_SIZE", "routes"]

PAGE_SIZE = 50
STYLESHEET = "digest.css"


@dataclass(frozen=True)
class EditionRow:
    id: int
    frequency: Frequency
    date: dt.date
    count: int


@dataclass(frozen=True)
class ArticleRow:
    title: str
    url: str
    summary: str
    author: str | None
    published_at: dt.datetime


def _editions(sessions: sessionmaker[Session], page: int) -> tuple[list[EditionRow], bool]:
    query = (select(Edition).order_by(Edition.date.desc(), Edition.id.desc())
             .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1))
    with sessions() as session:
        rows = [EditionRow(e.id, e.frequency, e.date, len(e.article_ids or []))
                for e in session.scalars(query)]
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def _edition(sessions: sessionmaker[Session],
             edition_id: int) -> tuple[EditionRow, list[ArticleRow]] | None:
    with sessions() as session:
        edition = session.get(Edition, edition_id)
        if edition is None:
            return None
        ids = [int(i) for i in edition.article_ids or []]
        found = {a.id: a for a in session.scalars(select(Article).where(Article.id.in_(ids)))}
        # The edition's order, not the database's; an article deleted since is just left out.
        articles = [ArticleRow(a.title, a.url, a.summary_text, a.author, a.published_at)
                    for a in (found.get(i) for i in ids) if a is not None]
        return EditionRow(edition.id, edition.frequency, edition.date, len(ids)), articles


def _ping(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        session.execute(text("SELECT 1"))
        return int(session.scalar(select(func.count(Edition.id))) or 0)


async def privacy(request: Request) -> Response:
    ctx = web_context(request)
    own = f"{ctx.settings.base_url.rstrip('/')}/privacy"
    if ctx.settings.privacy_url != own:  # the operator keeps the notice on the main site
        return RedirectResponse(ctx.settings.privacy_url, status_code=307)
    lang = ctx.language(request)
    return ctx.render("privacy.html.j2", lang=lang, title=lang.gettext("Privacy notice"),
                      postal_address=ctx.settings.postal_address,
                      from_address=ctx.settings.from_address.addr_spec)


async def archive(request: Request) -> Response:
    ctx = web_context(request)
    try:
        page = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        page = 1
    editions, more = await ctx.db(_editions, ctx.sessions, page)
    lang = ctx.language(request)
    return ctx.render("archive.html.j2", lang=lang, title=lang.gettext("Archive"),
                      editions=editions, page=page,
                      more=more, edition_path=lambda e: ctx.path("archive", e.id),
                      page_path=lambda n: ctx.path("archive") + f"?page={n}")


async def edition(request: Request) -> Response:
    ctx = web_context(request)
    found = await ctx.db(_edition, ctx.sessions, request.path_params["edition_id"])
    if found is None:
        raise HTTPException(404)
    row, articles = found
    lang = ctx.language(request)
    return ctx.render("edition.html.j2", lang=lang,
                      title=f"{ctx.settings.site_name}, {lang.date(row.date)}",
                      edition=row, articles=articles, archive=ctx.path("archive"))


async def stylesheet(request: Request) -> Response:
    ctx = web_context(request)
    assert ctx.env.loader is not None
    # Through the template loader, so DIGEST_TEMPLATES_DIR/web/digest.css restyles the pages.
    source, _name, _uptodate = ctx.env.loader.get_source(ctx.env, STYLESHEET)
    return Response(source, media_type="text/css",
                    headers={"Cache-Control": "public, max-age=3600"})


async def healthz(request: Request) -> Response:
    ctx = web_context(request)
    try:
        editions = await ctx.db(_ping, ctx.sessions)
    except Exception as exc:  # any database failure means "unhealthy"
        return JSONResponse({"status": "error", "database": type(exc).__name__},
                            status_code=503, headers={"Cache-Control": "no-store"})
    return JSONResponse({"status": "ok", "database": "ok", "editions": editions},
                        headers={"Cache-Control": "no-store"})


routes = [
    Route("/privacy", privacy, methods=["GET"]),
    Route("/archive", archive, methods=["GET"]),
    Route("/archive/{edition_id:int}", edition, methods=["GET"]),
    Route(f"/static/{STYLESHEET}", stylesheet, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
]
