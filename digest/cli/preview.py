"""``digest preview``: exactly the email one reader would get for one edition, sent nowhere.

It runs the same compose and render steps as sending, on a session that is only read and then
rolled back: no edition, delivery or subscriber row is created or changed. The edition is the
stored one when it was already planned (same id, same cutoff, so the same Message-ID and links);
otherwise one built in memory (id 0) whose cutoff is now, capped at the end of that date.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import replace
from pathlib import Path

import click
from sqlalchemy import select

from digest.cli.context import App, pass_app
from digest.compose import EditionView, ReaderView, compose, edition_cutoff
from digest.config.errors import DigestError, InvalidInput
from digest.config.locales import available_locales, language_of
from digest.delivery.snapshots import candidate_articles, edition_view_for, readers_for
from digest.readers.lifecycle import get_subscriber
from digest.render.message import Renderer
from digest.store.models import Edition, Frequency, SubscriberStatus, utcnow

__all__ = ["SAMPLE_READER", "preview"]

# Without --email: a new reader with no topics who never received anything.
SAMPLE_READER = ReaderView(subscriber_id=0, email="stefan.muresan@example.com",
                           name="Ștefan Mureșan")


@click.command("preview")
@click.option("--email", help="Preview for this subscriber (default: a sample new reader).")
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="The edition's date, YYYY-MM-DD (default: today in DIGEST_TIMEZONE).")
@click.option("--frequency", type=click.Choice([f.value for f in Frequency]),
              help="Which edition (default: the reader's own frequency).")
@click.option("--format", "fmt", type=click.Choice(["html", "text", "eml"]), default="text",
              show_default=True, help="eml is the complete message as it would be sent.")
@click.option("--locale", help="Preview in this language (default: the reader's own, else "
              "DIGEST_LOCALE), e.g. ro or en.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
@pass_app
def preview(app: App, email: str | None, day: dt.datetime | None, frequency: str | None,
            fmt: str, locale: str | None, output: Path | None) -> None:
    """Show the digest one reader would get, without sending or recording anything.

    \b
    Examples:
      digest preview                                    # a sample reader, today, as text
      digest preview --email ana@example.ro --format html --output ana.html
      digest preview --date 2026-11-28 --frequency weekly --format eml > weekly.eml
      digest preview --email ana@example.ro --locale en   # Ana's digest, in English
    """
    settings = app.settings
    renderer = Renderer(settings)
    tz = settings.timezone
    now = utcnow()
    date = day.date() if day else now.astimezone(tz).date()
    lookback = dt.timedelta(days=settings.max_lookback_days)
    session = app.sessions()
    try:
        reader = SAMPLE_READER
        if email:
            subscriber = get_subscriber(session, email)
            if subscriber.status is not SubscriberStatus.ACTIVE:
                click.echo(f"Note: {subscriber.email} is {subscriber.status.value}; "
                           "a real run would not send to them.", err=True)
            since = edition_cutoff(date, tz, now) - lookback - dt.timedelta(days=1)
            readers, _ = readers_for(session.connection(), [subscriber.id], since)
            reader = readers[subscriber.id]
        if locale:
            if language_of(locale) is None:
                raise InvalidInput(f"There is no {locale!r} catalog.",
                                   f"use one of {', '.join(available_locales())}")
            reader = replace(reader, locale=locale)
        chosen = Frequency(frequency) if frequency else reader.frequency
        stored = session.scalar(select(Edition).where(Edition.frequency == chosen,
                                                      Edition.date == date))
        edition = (edition_view_for(session.connection(), stored.id, tz) if stored is not None
                   else EditionView(0, chosen, date, edition_cutoff(date, tz, now)))
        articles = candidate_articles(session, edition, lookback)
    finally:
        session.rollback()  # read only: nothing was added, and nothing may be written
        session.close()
    digest = compose(articles, reader, edition, max_items=settings.max_items,
                     max_lookback=lookback)
    if digest is None:
        raise DigestError(
            f"Nothing new for this reader in the {chosen.value} edition of {date.isoformat()}.",
            "nothing new for this reader: add articles (digest articles add, digest fetch) "
            "or pick another --date")
    rendered = renderer.render(digest)
    if fmt == "eml":
        data = rendered.message_for(reader).data
    elif fmt == "html":
        html = rendered.html_for(reader)
        if html is None:
            raise InvalidInput("This reader gets plain text only.", "use --format text or eml")
        data = html.encode("utf-8")
    else:
        data = rendered.text_for(reader).encode("utf-8")
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(data)
        click.echo(f"Wrote {len(data)} bytes ({fmt}) to {output}.", err=True)
