"""``digest feeds ...`` and ``digest fetch``: the feeds articles come from.

``fetch`` exits 1 when a feed failed, while still fetching every other feed, so cron and
scripts can tell.
"""

from __future__ import annotations

import sys

import click

from digest.articles import feed_registry
from digest.articles.fetch import fetch_all
from digest.articles.fetch_report import FeedResult
from digest.cli.context import App, pass_app
from digest.cli.output import FORMAT_OPTION, TEXT_OR_JSON, echo_json, print_rows

__all__ = ["feeds_group", "fetch"]


FEED_COLUMNS = ["url", "title", "topics", "last_fetched_at", "last_status", "last_error"]


@click.group("feeds")
def feeds_group() -> None:
    """Manage the RSS/Atom feeds that `digest fetch` polls.

    \b
    Examples:
      digest feeds add https://stiri.example.ro/feed --topics local,politica
      digest feeds list --format json
      digest feeds remove https://stiri.example.ro/feed
    """


@feeds_group.command("add")
@click.argument("url")
@click.option("--topics", default=None, help="Comma-separated topics given to every article.")
@pass_app
def feeds_add(app: App, url: str, topics: str | None) -> None:
    """Add a feed to poll (adding it again updates its topics).

    \b
    Example:
      digest feeds add https://stiri.example.ro/sport/feed --topics sport
    """
    with app.sessions.begin() as session:
        feed, created = feed_registry.add_feed(session, url, topics)
        shown = ",".join(feed.topics) or "-"
        click.echo(f"{'Added' if created else 'Already present'}: {feed.url} (topics: {shown})")


@feeds_group.command("list")
@FORMAT_OPTION
@pass_app
def feeds_list(app: App, fmt: str) -> None:
    """List feeds with the outcome of their last fetch.

    \b
    Example:
      digest feeds list --format json
    """
    with app.sessions() as session:
        rows = (feed_registry.feed_as_dict(f) for f in feed_registry.list_feeds(session))
        count = print_rows(rows, FEED_COLUMNS, fmt)
    if fmt == "table":
        click.echo(f"{count} feed(s)", err=True)


@feeds_group.command("remove")
@click.argument("url")
@pass_app
def feeds_remove(app: App, url: str) -> None:
    """Stop polling a feed; articles already fetched are kept.

    \b
    Example:
      digest feeds remove https://stiri.example.ro/feed
    """
    with app.sessions.begin() as session:
        feed = feed_registry.remove_feed(session, url)
    click.echo(f"Removed: {feed.url}")


@click.command("fetch")
@TEXT_OR_JSON
@pass_app
def fetch(app: App, fmt: str) -> None:
    """Poll every feed once and store new and changed articles.

    Prints one line per feed and a total. Exits 1 if any feed failed (the others are still
    fetched), 0 otherwise.

    \b
    Example:
      digest fetch
      digest fetch --format json | jq '.feeds[] | select(.ok | not)'
    """
    def show(result: FeedResult) -> None:
        if fmt == "text":
            click.echo(result.line())

    report = fetch_all(app.sessions, app.settings, on_feed=show)
    if fmt == "json":
        echo_json(report.as_dict())
    else:
        click.echo(report.summary())
    if report.failed:
        sys.exit(1)
