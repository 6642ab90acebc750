"""``create_app(settings)``: the Starlette app behind ``digest serve``.

Paths (the email renderer puts exactly these in every digest, so keep them)::

    GET  /                         sign-up form        POST /subscribe
    GET  /confirm/{token}          page with a button  POST: activates
    GET  /unsubscribe/{token}      page with a button  POST: unsubscribes (RFC 8058 one-click)
    GET  /preferences/{token}      the reader's form   POST (+ /data, /delete)
    GET  /privacy  /archive  /archive/{edition_id}  /healthz  /static/digest.css
    POST /webhooks/ses|postmark|mailgun|sendgrid    provider bounces and complaints

A path in ``DIGEST_BASE_URL`` (``https://news.example.ro/digest``) is a public prefix. The app
answers both with and without it, so a reverse proxy may strip it (``location /digest/ {
proxy_pass http://127.0.0.1:8000/; }``) or pass it through (``proxy_pass
http://127.0.0.1:8000;``); links in the pages are root-relative and carry the prefix, so they
work through the proxy and on 127.0.0.1 alike.

The app sets no cookies and loads no third-party resources. Uvicorn trusts ``X-Forwarded-For``
only from ``--forwarded-allow-ips`` (default 127.0.0.1), which the per-IP sign-up limit and the
consent evidence rely on behind a proxy.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus

from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from digest.config.settings import Settings
from digest.feedback.sns import SnsVerifier
from digest.render.environment import make_environment
from digest.render.i18n import N_
from digest.store.engine import make_engine, make_sessionmaker
from digest.store.models import utcnow
from digest.web import links, pages, prefs, signup, webhooks
from digest.web.context import WebContext, path_prefix, web_context
from digest.web.markup import status_name, strong, strong_address
from digest.web.security import SECURITY_HEADERS, RateLimiter, SecurityHeadersMiddleware

__all__ = ["create_app"]

# Translated when shown, in the page's language (N_ only marks them for the catalog).
_MESSAGES = {
    400: (N_("This link does not work"), links.BAD_LINK),
    404: (N_("Page not found"), N_("There is no page at this address.")),
    405: (N_("Not allowed"), N_("This page cannot be used that way.")),
    413: (N_("Too large"), N_("The form sent was too large.")),
    500: (N_("Something went wrong"),
          N_("Something went wrong on our side. Please try again later.")),
}
_OTHER = (N_("Error"), N_("The request could not be handled."))


class PrefixMiddleware:
    """Serve ``/digest/x`` as ``/x`` when the public base URL has the path ``/digest``."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if self.prefix and scope["type"] == "http" and (
                path == self.prefix or path.startswith(self.prefix + "/")):
            stripped = path[len(self.prefix):] or "/"
            scope = {**scope, "path": stripped, "raw_path": stripped.encode()}
        await self.app(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title, message = _MESSAGES.get(exc.status_code, _OTHER)
    # Our own handlers raise with a reader-facing detail (an English msgid from the catalog,
    # translated here); Starlette's use the status phrase.
    if exc.detail and exc.detail != HTTPStatus(exc.status_code).phrase:
        message = exc.detail
    ctx = web_context(request)
    lang = ctx.language(request)
    return ctx.render("error.html.j2", exc.status_code, lang=lang, headers=exc.headers,
                      title=lang.gettext(title), code=exc.status_code,
                      message=lang.gettext(message))


async def _server_error(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after this answer, so uvicorn logs the traceback; the reader sees none.
    title, message = _MESSAGES[500]
    ctx = web_context(request)
    lang = ctx.language(request)
    # This answer comes from outside the middleware stack: add the headers here.
    return ctx.render("error.html.j2", 500, lang=lang, headers=SECURITY_HEADERS,
                      title=lang.gettext(title), code=500, message=lang.gettext(message))


def create_app(settings: Settings, *, sessions: sessionmaker[Session] | None = None,
               clock: Callable[[], dt.datetime] = utcnow,
               limiter: RateLimiter | None = None,
               sns: SnsVerifier | None = None) -> Starlette:
    """The reader-facing app. Refuses (``ConfigError``) without ``DIGEST_SECRET_KEY``.

    ``sessions`` defaults to a new engine on ``settings.database_url`` (disposed on shutdown);
    ``clock`` and ``limiter`` are there so tests can move time and tighten the limit, ``sns``
    so they can verify SNS messages signed by a local certificate server.
    """
    secret = settings.require_secret_key()
    engine = None
    if sessions is None:
        engine = make_engine(settings.database_url)
        sessions = make_sessionmaker(engine)
    env = make_environment(settings, "web")
    prefix = path_prefix(settings.base_url)
    ctx = WebContext(settings, sessions, env, clock, secret, limiter or RateLimiter())
    ctx.globals.update(site_name=settings.site_name, site_url=settings.site_url,
                       privacy_url=settings.privacy_url, home=prefix + "/",
                       archive_url=prefix + "/archive",
                       stylesheet=f"{prefix}/static/{pages.STYLESHEET}",
                       address=strong_address, strong=strong, status_name=status_name)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        if engine is not None:
            engine.dispose()

    app = Starlette(
        routes=[*signup.routes, *links.routes, *prefs.routes, *pages.routes, *webhooks.routes],
        middleware=[Middleware(SecurityHeadersMiddleware),
                    Middleware(PrefixMiddleware, prefix=prefix)],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.web = ctx
    app.state.webhooks = webhooks.Webhooks(
        sns or SnsVerifier(settings.feedback.ses_topic_arns))
    return app
