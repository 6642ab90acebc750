"""Request hygiene for the reader pages: security headers on every response, a per-IP sliding
window rate limiter for sign-ups, the honeypot check, and a size-capped form reader.

No cookies are ever set, so there is no session to ride: every state-changing POST other than
sign-up is authorised by the signed token in its URL, which a cross-site attacker does not have.
Sign-up deliberately accepts cross-site posts (the publication embeds the "News To Your Inbox"
box on its own pages); double opt-in makes a forged sign-up harmless.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

from starlette.datastructures import FormData, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "HONEYPOT_FIELD",
    "SECURITY_HEADERS",
    "RateLimiter",
    "SecurityHeadersMiddleware",
    "honeypot_filled",
    "read_form",
]

# No script at all; styles only from our own stylesheet; images only from us (an external image
# in the archive would tell a third party who reads what); forms post only back to us.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "interest-cohort=(), browsing-topics=()",
}

# A field real people never see (hidden by the stylesheet, skipped by tab order) but form-filling
# bots happily complete. Named like something a bot wants to fill.
HONEYPOT_FIELD = "website"

# Reader forms are tiny; anything bigger is not a person filling in a form.
MAX_FORM_BYTES = 64 * 1024
# Our forms have a handful of fields plus one per topic box; a body with more is not a reader's.
MAX_FORM_FIELDS = 200


class SecurityHeadersMiddleware:
    """Pure ASGI middleware: adds ``SECURITY_HEADERS`` to every HTTP response, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass
class RateLimiter:
    """At most ``limit`` hits per ``window`` seconds per key (an IP): a sliding window in memory.

    Memory is bounded: stale keys are pruned when the table grows past ``max_keys``. Per process
    only; with several ``digest serve`` workers each counts on its own, which is still a cap.
    """

    limit: int = 5
    window: float = 600.0
    max_keys: int = 50_000
    clock: Callable[[], float] = time.monotonic
    _hits: dict[str, deque[float]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def hit(self, key: str) -> float:
        """Count one hit; return 0 if allowed, else the seconds until the next one is allowed."""
        now = self.clock()
        with self._lock:
            if len(self._hits) > self.max_keys:
                self._prune(now)
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(1.0, hits[0] + self.window - now) if hits else self.window
            hits.append(now)
            return 0.0

    def _prune(self, now: float) -> None:
        stale = [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]
        for key in stale:
            del self._hits[key]


def honeypot_filled(form: FormData) -> bool:
    value = form.get(HONEYPOT_FIELD)
    return isinstance(value, str) and value.strip() != ""


async def read_form(request: Request, limit: int = MAX_FORM_BYTES) -> FormData:
    """The request's form fields (urlencoded or multipart, no files), at most ``limit`` bytes.

    Any other body (or none) gives an empty form: the one-click endpoint must act whatever a
    mail client sends. Too big, or more than ``MAX_FORM_FIELDS`` fields, is 413; malformed
    multipart is 400.
    """
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise HTTPException(413, "The form is too large.")

    async def replay() -> AsyncGenerator[bytes, None]:
        yield bytes(body)

    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        try:
            return await FormParser(request.headers, replay(),
                                    max_fields=MAX_FORM_FIELDS).parse()
        except MultiPartException as exc:  # the one it raises: too many fields
            raise HTTPException(413, "The form has too many fields.") from exc
    if content_type == "multipart/form-data":
        try:
            return await MultiPartParser(request.headers, replay(), max_files=0,
                                         max_fields=MAX_FORM_FIELDS).parse()
        except MultiPartException as exc:
            raise HTTPException(400, "The form could not be read.") from exc
    return FormData()
