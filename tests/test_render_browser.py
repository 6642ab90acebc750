"""The HTML part in headless Chromium at phone (375 px) and desktop-client (600 px) widths:
no horizontal scrolling, images sized, and screenshots saved to test-artifacts/ for review."""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from digest.compose import Digest
from digest.config.settings import Settings
from digest.render.message import Renderer
from tests.mailcheck import EDITION, NASTY_TITLE, STEFAN, long_article

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour PNG, so article images load without any network."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    row = b"\x00" + bytes(rgb) * width
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                             0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


def test_digest_renders_without_horizontal_scroll(settings: Settings) -> None:
    from playwright.sync_api import Route, sync_playwright

    articles = (
        long_article(1, title=NASTY_TITLE, image=True),
        long_article(2, title="Un-cuvânt-foarte-lung-fără-spații-" * 4),
        long_article(3, image=True),
        long_article(4),
    )
    html = Renderer(settings).render(Digest(EDITION, articles)).html_for(STEFAN)
    assert html is not None
    image = png(1104, 620, (96, 125, 139))
    ARTIFACTS.mkdir(exist_ok=True)

    def serve(route: Route) -> None:
        if route.request.url.endswith(".jpg"):
            route.fulfill(status=200, content_type="image/png", body=image)
        else:
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update"])
        try:
            for width in (375, 600):
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.route("**/*", serve)
                page.set_content(html, wait_until="load")
                scroll = page.evaluate("document.documentElement.scrollWidth")
                assert scroll <= width, f"{scroll}px wide at a {width}px viewport"
                sizes = page.evaluate("[...document.images].map(i => [i.naturalWidth, "
                                      "i.getBoundingClientRect().width, "
                                      "i.getBoundingClientRect().height])")
                assert len(sizes) == 2
                for natural, shown, height in sizes:
                    assert natural == 1104  # the image loaded
                    assert 0 < shown <= 128 and abs(height - shown * 620 / 1104) < 2
                no_script = page.evaluate("document.querySelectorAll('script').length")
                assert no_script == 0
                title = page.evaluate("document.querySelector('h2').textContent")
                assert "<script>" in title  # shown as text, not run
                page.screenshot(path=str(ARTIFACTS / f"digest-{width}.png"), full_page=True)
                page.close()
            # Clients that honour prefers-color-scheme get the dark palette from the kept @media.
            page = browser.new_page(viewport={"width": 600, "height": 900}, color_scheme="dark")
            page.route("**/*", serve)
            page.set_content(html, wait_until="load")
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(21, 25, 30)"
            page.screenshot(path=str(ARTIFACTS / "digest-600-dark.png"), full_page=False)
        finally:
            browser.close()
    assert (ARTIFACTS / "digest-375.png").stat().st_size > 10_000


def _browser():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright
    return sync_playwright()


def _launch(p):  # type: ignore[no-untyped-def]
    return p.chromium.launch(executable_path=str(CHROMIUM),
                             args=["--no-sandbox", "--disable-gpu",
                                   "--disable-background-networking",
                                   "--disable-component-update"])


def _server(image: bytes | None):  # type: ignore[no-untyped-def]
    """A route handler (one argument: Playwright passes the request too to two-argument
    ones) that serves ``image`` for every .jpg, or blocks images when it is None."""
    def serve(route) -> None:  # type: ignore[no-untyped-def]
        if image is not None and route.request.url.endswith(".jpg"):
            route.fulfill(status=200, content_type="image/png", body=image)
        else:
            route.abort()
    return serve


def test_romanian_and_english_digests_at_375px_and_with_images_off(settings: Settings) -> None:
    """Screenshots (test-artifacts/digest-ro-375.png, digest-en-375.png, digest-ro-375-no-
    images.png): no horizontal scroll, the lang attribute, and with images blocked no empty
    picture-sized box."""
    renderer = Renderer(settings)
    articles = (long_article(1, title=NASTY_TITLE, image=True),
                long_article(2, title="Un-cuvânt-foarte-lung-fără-spații-" * 4, image=True),
                long_article(3, image=True), long_article(4))
    image = png(1104, 620, (96, 125, 139))
    ARTIFACTS.mkdir(exist_ok=True)
    with _browser() as p:
        browser = _launch(p)
        try:
            for locale, images in (("ro", True), ("en", True), ("ro", False)):
                reader = replace(STEFAN, locale=locale)
                html = renderer.render(Digest(EDITION, articles, locale=locale)).html_for(reader)
                assert html is not None
                page = browser.new_page(viewport={"width": 375, "height": 800})

                page.route("**/*", _server(image if images else None))
                page.set_content(html, wait_until="load")
                assert page.evaluate("document.documentElement.lang") == locale
                scroll = page.evaluate("document.documentElement.scrollWidth")
                assert scroll <= 375, f"{locale}: {scroll}px wide at 375px"
                heights = page.evaluate(
                    "[...document.images].map(i => i.getBoundingClientRect().height)")
                assert len(heights) == 3
                if images:
                    assert all(60 < h < 75 for h in heights), heights
                else:  # one line of alt text, not the 16:9 box the attributes describe
                    assert all(h <= 24 for h in heights), heights
                more = page.evaluate("[...document.querySelectorAll('a[aria-label]')]"
                                     ".map(a => a.getAttribute('aria-label'))")
                assert len(more) == 4 and all(":" in m for m in more)
                suffix = "" if images else "-no-images"
                page.screenshot(path=str(ARTIFACTS / f"digest-{locale}-375{suffix}.png"),
                                full_page=True)
                page.close()
        finally:
            browser.close()
    assert (ARTIFACTS / "digest-ro-375.png").stat().st_size > 10_000
