"""Sample messages rendered with the real templates and settings, checked against the checklist.

``digest check`` renders every combination an edition can take -- each language, daily and
weekly, a new reader, a reader with a topic filter (fewer articles), the longest title we
accept, plain-text-only -- with DKIM on when it is configured, and reports what the checklist
(``digest.render.checklist``) finds. ``preflight`` is the same on one sample per language, run
by ``digest send`` before it claims anything: a template override (``DIGEST_TEMPLATES_DIR``)
that dropped the unsubscribe link, the privacy link or the postal address stops the send.

Pure: no database, no network; the articles are made up here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from digest.compose import ArticleView, Digest, EditionView, ReaderView, compose
from digest.config.errors import ConfigError
from digest.config.locales import available_locales
from digest.config.settings import Settings
from digest.render.checklist import Finding, check_message
from digest.render.message import Renderer
from digest.render.mime import ascii_url
from digest.store.models import Frequency

__all__ = ["SampleResult", "check_samples", "preflight", "sample_articles"]

LONGEST_TITLE = 300  # what feeds and `articles add` store at most, in characters
_CUTOFF = dt.datetime(2026, 12, 1, 5, 0, tzinfo=dt.UTC)
_TEXT = ("Consiliul Județean a aprobat bugetul pentru drumurile din zonă, iar lucrările încep "
         "în primăvară, după licitația organizată de primărie. ")


@dataclass(frozen=True)
class SampleResult:
    """One sample message and what the checklist found in it."""

    name: str  # e.g. "ro weekly, topic filter"
    findings: tuple[Finding, ...]
    size: int

    @property
    def ok(self) -> bool:
        return not self.findings


def sample_articles() -> tuple[ArticleView, ...]:
    """Ten articles: pictures, authors, topics, markup-like characters and the longest title."""
    long_title = ("Știrea cea mai lungă: " + "drumurile județene intră în reparații, " * 9)
    titles = [long_title[:LONGEST_TITLE].rstrip(" ,"),
              'Primarul a spus „Nu” și “altceva” <b>&</b> alte știri']
    titles += [f"Știrea numărul {i}: podul de la Mioveni se redeschide" for i in range(3, 11)]
    return tuple(
        ArticleView(
            id=i, url=f"https://stiri.example.ro/articol/{i}", title=title,
            summary_text=_TEXT * 3, summary_html=f"<p>{_TEXT * 3}</p>",
            published_at=_CUTOFF - dt.timedelta(hours=i), topics=("sport",) if i % 3 else (),
            image_url=f"https://stiri.example.ro/img/{i}.jpg" if i % 2 else None,
            author="Ana Popescu" if i % 2 else None)
        for i, title in enumerate(titles, start=1))


def _readers(locale: str) -> list[tuple[str, ReaderView]]:
    base = ReaderView(subscriber_id=1, email="stefan.muresan@example.ro", name="Ștefan Mureșan",
                      locale=locale)
    return [
        ("new reader", base),
        ("topic filter", ReaderView(2, "ana@example.ro", None, frozenset({"sport"}),
                                    locale=locale)),
        ("plain text only", ReaderView(3, "ion@example.ro", "Ion", plain_text_only=True,
                                       locale=locale)),
    ]


def _check(renderer: Renderer, settings: Settings, digest: Digest,
           reader: ReaderView) -> tuple[tuple[Finding, ...], int]:
    rendered = renderer.render(digest)
    data = rendered.message_for(reader).data
    findings = check_message(
        data, html_expected=not digest.plain_text_only,
        unsubscribe_url=rendered.values(reader)["unsubscribe_url"],
        privacy_url=ascii_url(settings.privacy_url),
        postal_address=settings.postal_address.strip() or None, dkim=settings.dkim_enabled)
    return tuple(findings), len(data)


def check_samples(settings: Settings, *, quick: bool = False) -> list[SampleResult]:
    """Render and check the samples (``quick``: one daily message per language)."""
    renderer = Renderer(settings)
    articles = sample_articles()
    results: list[SampleResult] = []
    for locale in available_locales():
        for frequency in Frequency:
            edition = EditionView(1, frequency, _CUTOFF.date(), _CUTOFF)
            for label, reader in _readers(locale):
                digest = compose(articles, reader, edition, max_items=settings.max_items,
                                 max_lookback=dt.timedelta(days=14))
                assert digest is not None  # the samples always have news
                findings, size = _check(renderer, settings, digest, reader)
                results.append(SampleResult(f"{locale} {frequency.value}, {label}", findings,
                                            size))
                if quick:
                    break
            if quick:
                break
    return results


def preflight(settings: Settings) -> None:
    """Refuse to send (``ConfigError``, exit 2) when the templates lost something required."""
    missing = [(r.name, f) for r in check_samples(settings, quick=True)
               for f in r.findings if f.required]
    if missing:
        lines = "; ".join(f"{name}: {f.message}" for name, f in missing[:6])
        where = (f"the templates in DIGEST_TEMPLATES_DIR={settings.templates_dir}"
                 if settings.templates_dir else "the templates")
        raise ConfigError(
            f"Not sending: {where} render a message without something every digest must "
            f"have ({lines}).",
            "put the unsubscribe, preferences and privacy links and the postal address back "
            "(compare with the built-in digest/templates/email/), then run `digest check`")
