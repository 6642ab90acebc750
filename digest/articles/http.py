"""Downloading one feed over HTTP: conditional GET, timeout, size cap, redirects, User-Agent.

``download`` never raises for a network or server problem: it returns a ``Download`` whose
``error`` says what went wrong in words an operator can act on. The body is streamed and the
size cap is enforced while reading, on the decoded bytes as they come out of the decompressor
(``digest.articles.inflate``: bounded steps, so a gzip bomb -- nested ``gzip, gzip`` too -- is
stopped a step past the cap, never inflated first); a ``Content-Length`` over the cap is refused
before reading anything. Besides httpx's per-read
timeout, a whole-download deadline stops a server that trickles bytes forever.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import httpx

from digest import __version__
from digest.articles.inflate import UnsupportedEncoding, decoded_stream, encodings

__all__ = ["Download", "Validators", "download", "user_agent"]

MAX_REDIRECTS = 5
_PERMANENT = frozenset({301, 308})
_ACCEPT = ("application/rss+xml, application/atom+xml, application/feed+json, "
           "application/rdf+xml;q=0.9, application/json;q=0.8, "
           "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")


def user_agent(site_url: str) -> str:
    """Says who is fetching and where to find out more, as polite crawlers do."""
    return f"digest/{__version__} (feed fetcher; +{site_url})"


@dataclass(frozen=True)
class Validators:
    """What the server gave us last time, sent back so it can answer 304 Not Modified."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        sent = {}
        if self.etag:
            sent["If-None-Match"] = self.etag
        if self.last_modified:
            sent["If-Modified-Since"] = self.last_modified
        return sent


@dataclass(frozen=True)
class Download:
    url: str  # the URL asked for
    final_url: str  # after redirects
    status: int | None = None
    body: bytes | None = None
    content_type: str | None = None
    validators: Validators = Validators()
    # True when every redirect on the way was permanent (301/308): the feed has moved.
    moved_permanently: bool = False
    error: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class _TooLarge(Exception):
    pass


def _read_capped(response: httpx.Response, cap: int, deadline: float, timeout: float) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    raw = response.iter_raw()
    for chunk in decoded_stream(raw, encodings(response.headers.get("content-encoding"))):
        size += len(chunk)
        if size > cap:
            raise _TooLarge
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout(f"the whole download took longer than {timeout:g}s")
        chunks.append(chunk)
    return b"".join(chunks)


def download(url: str, validators: Validators, *, timeout: float, max_bytes: int,
             agent: str) -> Download:
    """GET ``url`` once; the outcome, good or bad, as a ``Download``."""
    # Only codings inflate.py can undo as a bounded stream (httpx would add br/zstd when their
    # packages happen to be installed).
    headers = {"User-Agent": agent, "Accept": _ACCEPT, "Accept-Encoding": "gzip, deflate",
               **validators.headers()}
    # The deadline covers the whole exchange; per-operation timeouts alone let a server that
    # sends one byte every few seconds hold us forever.
    deadline = time.monotonic() + timeout * 2
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True, max_redirects=MAX_REDIRECTS,
                          headers=headers) as client, client.stream("GET", url) as response:
            final = str(response.url)
            moved = bool(response.history) and all(
                r.status_code in _PERMANENT for r in response.history)
            base = Download(url, final, response.status_code,
                            content_type=response.headers.get("content-type"),
                            moved_permanently=moved)
            if response.status_code == 304:
                return base
            if response.status_code >= 400:
                reason = response.reason_phrase or ""
                return _failed(base, f"HTTP {response.status_code} {reason}".rstrip())
            if response.status_code != 200:
                return _failed(base, f"unexpected HTTP status {response.status_code}")
            body = _read_capped(response, max_bytes, deadline, timeout)
            return Download(
                url, final, response.status_code, body, base.content_type,
                Validators(response.headers.get("etag"), response.headers.get("last-modified")),
                moved,
            )
    except _TooLarge:
        return Download(url, url, error=f"response larger than {max_bytes} bytes "
                        "(DIGEST_FEED_MAX_BYTES)")
    except httpx.TimeoutException:
        return Download(url, url, error=f"timed out after {timeout:g}s (DIGEST_FEED_TIMEOUT)")
    except httpx.TooManyRedirects:
        return Download(url, url, error=f"more than {MAX_REDIRECTS} redirects")
    except httpx.ConnectError as exc:
        return Download(url, url, error=f"cannot connect: {exc}")
    except httpx.UnsupportedProtocol as exc:
        return Download(url, url, error=f"unsupported URL (only http and https): {exc}")
    except UnsupportedEncoding as exc:
        return Download(url, url, error=f"the server sent Content-Encoding {exc}, which digest "
                        "cannot decode (it asks for gzip or deflate)")
    except (httpx.DecodingError, zlib.error):
        return Download(url, url, error="the response body could not be decoded "
                        "(corrupt compressed data)")
    except httpx.HTTPError as exc:
        return Download(url, url, error=f"{type(exc).__name__}: {exc}")


def _failed(base: Download, error: str) -> Download:
    return Download(base.url, base.final_url, base.status, content_type=base.content_type,
                    moved_permanently=base.moved_permanently, error=error)
