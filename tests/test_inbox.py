"""An inbox-perfect message: Debian's SpamAssassin (shipped rules, private spamd) finds nothing
to score on any rendered digest or confirmation; the Outlook wrapper, the images, the accessible
"Read more" links; and `digest check` / `digest send` catching a template override that dropped
the unsubscribe link."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import replace
from pathlib import Path

from click.testing import CliRunner

from digest.cli import main
from digest.compose import EditionView, ReaderView, compose
from digest.config.settings import Settings
from digest.render.environment import BUILTIN_TEMPLATES
from digest.render.message import Renderer
from digest.render.samples import check_samples, sample_articles
from digest.store.models import Frequency
from digest.web.confirmation import build_confirmation
from tests.conftest import SmtpServer, cli_env
from tests.sending_data import add_articles
from tests.spamassassin_check import Spamd
from tests.web_support import add_reader

CUTOFF = dt.datetime(2026, 12, 1, 5, 0, tzinfo=dt.UTC)
# Fires on every message that has an HTML part at all (score 0.001, "informational" in the
# shipped rules): the one rule no HTML email can avoid.
UNAVOIDABLE = {"HTML_MESSAGE"}


def _messages(settings: Settings) -> list[tuple[str, bytes]]:
    renderer = Renderer(settings)
    found = []
    for locale in ("en", "ro"):
        for frequency in Frequency:
            edition = EditionView(3, frequency, CUTOFF.date(), CUTOFF)
            for label, reader in (
                    ("new", ReaderView(1, "stefan@example.ro", "Ștefan Mureșan", locale=locale)),
                    ("topic", ReaderView(2, "ana@example.ro", None, frozenset({"sport"}),
                                         locale=locale)),
                    ("one article", ReaderView(3, "ion@example.ro", "Ion", locale=locale))):
                articles = sample_articles()[:1] if label == "one article" else sample_articles()
                digest = compose(articles, reader, edition, max_items=10,
                                 max_lookback=dt.timedelta(days=14))
                assert digest is not None
                found.append((f"{locale} {frequency.value} {label}",
                              renderer.render(digest).message_for(reader).data))
        found.append((f"{locale} confirmation", build_confirmation(
            settings, email="ana@example.ro", name="Ana", now=CUTOFF, locale=locale,
            url="https://stiri.example.ro/digest/confirm/abc")))
    return found


def test_spamassassin_scores_every_message_at_most_zero_with_no_positive_rule(
        settings: Settings, spamd: Spamd) -> None:
    # Never relayed, so NO_RECEIVED and NO_RELAYS fire; both score -0.001 (nothing to add).
    for name, data in _messages(settings):
        result = spamd.check(data)
        positive = {rule for rule, score in result.rules if score > 0} - UNAVOIDABLE
        assert result.score <= 0 and not positive, (name, result.score, result.rules)


def test_the_old_hidden_preheader_was_a_spam_signal(settings: Settings, spamd: Spamd,
                                                    tmp_path: Path) -> None:
    """The control: the old preheader (text coloured like the page, 1 px) does fire, so the
    test above would see it come back."""
    source = (BUILTIN_TEMPLATES / "email" / "digest.html.j2").read_text(encoding="utf-8")
    hidden = '<div style="display: none; max-height: 0; overflow: hidden; mso-hide: all;">'
    old = ('<div style="display: none; max-height: 0; max-width: 0; overflow: hidden; '
           'opacity: 0; font-size: 1px; line-height: 1px; color: #ffffff; mso-hide: all;">')
    assert hidden in source
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "digest.html.j2").write_text(source.replace(hidden, old),
                                                       encoding="utf-8")
    _, data = _messages(replace(settings, templates_dir=tmp_path))[0]
    assert "HTML_FONT_LOW_CONTRAST" in spamd.check(data).rule_names


def test_outlook_images_and_accessible_links(settings: Settings) -> None:
    rendered = Renderer(settings).render(compose(
        sample_articles(), ReaderView(1, "s@example.ro", None, locale="ro"),
        EditionView(3, Frequency.DAILY, CUTOFF.date(), CUTOFF), max_items=10,
        max_lookback=dt.timedelta(days=14)))  # type: ignore[arg-type]
    html = rendered.html_for(ReaderView(1, "s@example.ro", None, locale="ro")) or ""
    # Outlook for Windows: a fixed 600 px table only it sees, closed after the card.
    assert re.search(r'<!--\[if mso\]><table role="presentation" width="600"[^>]*><tr><td>'
                     r'<!\[endif\]-->\s*<table class="container card" role="presentation"', html)
    assert "<!--[if mso]></td></tr></table><![endif]-->" in html
    titles = [a.title for a in sample_articles()]
    images = re.findall(r"<img [^>]*>", html)
    assert len(images) == 5
    for img in images:
        alt = re.search(r'alt="([^"]*)"', img)
        assert alt is not None and alt.group(1) == "Fotografie"
        assert not any(t in alt.group(1) for t in titles)
        assert re.search(r'width="\d+"', img) and re.search(r'height="\d+"', img)
        assert "aspect-ratio: auto" in img  # images off: a line of alt text, no empty box
    more = re.findall(r'<a [^>]*aria-label="([^"]*)"[^>]*>Citiți mai mult', html)
    assert len(more) == len(titles)
    for label, title in zip(more, titles, strict=True):
        assert label.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">") \
            .replace("&#34;", '"') .replace("&quot;", '"') == f"Citiți mai mult: {title}"
    assert "visibility: hidden" not in html and "font-size: 0; line-height: 0; color" not in html
    assert not re.search(r"height: ?(1[9]\d|2\d\d|30\d|310)px", html)  # no fixed-height block


def _override(tmp_path: Path) -> Path:
    """An operator's copy of the footer that lost the unsubscribe link."""
    folder = tmp_path / "templates" / "email"
    folder.mkdir(parents=True)
    footer = (BUILTIN_TEMPLATES / "email" / "_footer.html.j2").read_text(encoding="utf-8")
    without = re.sub(r'<a class="link" href="\{\{ unsubscribe_url \}\}">.*?</a> &middot; ', "",
                     footer)
    assert without != footer
    (folder / "_footer.html.j2").write_text(without, encoding="utf-8")
    return tmp_path / "templates"


def test_digest_check_passes_and_catches_an_override_without_unsubscribe(
        settings: Settings, tmp_path: Path) -> None:
    results = check_samples(settings)
    assert len(results) == 12 and all(r.ok for r in results), [r.findings for r in results]
    runner = CliRunner()
    env = cli_env(settings)
    good = runner.invoke(main, ["check"], env=env)
    assert good.exit_code == 0 and "12 of 12 sample messages pass" in good.output
    env["DIGEST_TEMPLATES_DIR"] = str(_override(tmp_path))
    bad = runner.invoke(main, ["check", "--format", "json"], env=env)
    assert bad.exit_code == 1
    report = json.loads(bad.output)
    assert report["failed"] == 8  # every HTML sample; plain-text-only readers still have it
    assert "REQUIRED: the HTML part has no unsubscribe link" in report["samples"][0]["findings"]


def test_send_refuses_an_override_without_unsubscribe(
        smtp_settings: Settings, smtp_server: SmtpServer, tmp_path: Path) -> None:
    env = cli_env(smtp_settings)
    runner = CliRunner()
    assert runner.invoke(main, ["init"], env=env).exit_code == 0
    from digest.store.engine import make_engine, make_sessionmaker
    engine = make_engine(smtp_settings.database_url)
    sessions = make_sessionmaker(engine)
    add_articles(sessions)
    add_reader(sessions, "ana@example.ro")
    engine.dispose()
    env["DIGEST_TEMPLATES_DIR"] = str(_override(tmp_path))
    refused = runner.invoke(main, ["send"], env=env)
    assert refused.exit_code == 2, refused.output
    assert "Not sending" in refused.output and "no unsubscribe link" in refused.output
    assert "digest check" in refused.output and smtp_server.received == []
    del env["DIGEST_TEMPLATES_DIR"]
    sent = runner.invoke(main, ["send"], env=env)
    assert sent.exit_code == 0, sent.output
    assert len(smtp_server.received) == 1


def test_feedback_id_in_gmail_format(settings: Settings) -> None:
    _, data = _messages(replace(settings, locale="ro"))[3]  # en weekly
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    found = re.search(r"^Feedback-ID: ([^\r\n]+)", head, re.M)
    assert found is not None
    assert found.group(1).split(":") == ["3", "weekly", "weekly.example.ro", "example.ro"]
