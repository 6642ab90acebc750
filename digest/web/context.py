"""What every route needs: settings, the session factory, the template environments (one per
language), the clock, the sign-up rate limiter; plus rendering in the reader's language, link
building and running store code off the event loop.

A page's language: the reader's own (pages behind a reader's link), else ``?lang=``, else the
browser's ``Accept-Language``, else ``DIGEST_LOCALE``.

Routes reach it with ``web_context(request)``; ``create_app`` puts one on ``app.state``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

import jinja2
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse

from digest.config.locales import language_of, negotiate
from digest.config.settings import Settings
from digest.render.environment import make_environment
from digest.render.i18n import Language, language, language_names
from digest.render.tokens import Purpose, make_token
from digest.web.security import RateLimiter

__all__ = ["WebContext", "path_prefix", "web_context"]

P = ParamSpec("P")
T = TypeVar("T")

# Pages that show a reader's own data must not be kept by shared caches or the back button.
NO_STORE = {"Cache-Control": "no-store"}


def path_prefix(base_url: str) -> str:
    """``https://x.ro/digest/`` -> ``/digest``; ``https://x.ro`` -> ``""``."""
    return urlsplit(base_url).path.rstrip("/")


@dataclass
class WebContext:
    settings: Settings
    sessions: sessionmaker[Session]
    env: jinja2.Environment  # in DIGEST_LOCALE; the others are made on first use
    clock: Callable[[], dt.datetime]
    secret: str
    limiter: RateLimiter
    # Subscriber ids whose confirmation email is being sent right now: a double-click on the
    # sign-up button must not send two emails.
    sending: set[int] = field(default_factory=set)
    globals: dict[str, Any] = field(default_factory=dict)
    _envs: dict[str, jinja2.Environment] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return path_prefix(self.settings.base_url)

    def path(self, *parts: str | int) -> str:
        """A root-relative link to one of our pages, e.g. ``/digest/preferences/TOKEN``.

        Root-relative (not absolute) so the pages work on the public host and on 127.0.0.1 alike.
        """
        return self.prefix + "/" + "/".join(str(p) for p in parts)

    def token(self, purpose: Purpose, subscriber_id: int) -> str:
        now = self.clock() if purpose is Purpose.CONFIRM else None
        return make_token(self.secret, purpose, subscriber_id, now=now)

    def language(self, request: Request, reader_locale: str | None = None) -> Language:
        """The language of the page answering ``request`` (see the module docstring)."""
        chosen = language_of(reader_locale) or language_of(request.query_params.get("lang"))
        if chosen is None:
            chosen = negotiate(request.headers.get("accept-language"), self.settings.locale)
        return language(chosen, self.settings.locale)

    def env_for(self, lang: Language) -> jinja2.Environment:
        env = self._envs.get(lang.code)
        if env is None:
            env = make_environment(self.settings, "web", lang)
            env.globals.update(self.globals, languages=language_names())
            self._envs[lang.code] = env
        return env

    def render(self, template: str, status: int = 200, *, lang: Language,
               private: bool = False, headers: Mapping[str, str] | None = None,
               **context: Any) -> HTMLResponse:
        html = self.env_for(lang).get_template(template).render(**context)
        merged = {"Content-Language": lang.code, "Vary": "Accept-Language",
                  **(NO_STORE if private else {}), **(headers or {})}
        return HTMLResponse(html, status_code=status, headers=merged)

    async def db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking store code in the thread pool so one slow query never stalls the loop."""
        return await run_in_threadpool(fn, *args, **kwargs)


def web_context(request: Request) -> WebContext:
    ctx = request.app.state.web
    assert isinstance(ctx, WebContext)
    return ctx
