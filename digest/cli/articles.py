"""``digest articles ...``: add, import and list articles by hand (feeds: ``cli.feeds``).

``articles import`` exits 1 when a record was refused, while still importing every other
record, so cron and scripts can tell.
"""

from __future__ import annotations

import io

import click

from digest.articles.json_import import import_articles, parse_datetime, record_to_article
from digest.articles.store import article_as_dict, list_articles, upsert_article
from digest.cli.context import App, pass_app
from digest.cli.output import TEXT_OR_JSON, finish_import, print_rows

__all__ = ["articles_group"]

ARTICLE_COLUMNS = ["published_at", "title", "url", "topics"]


@click.group("articles")
def articles_group() -> None:
    """Add, import and list articles.

    \b
    Examples:
      digest articles add --title "Drum nou la Pitești" --url https://stiri.example.ro/a/1
      digest articles import export.jsonl
      digest articles list --since 2024-05-01 --format json
    """


@articles_group.command("add")
@click.option("--title", required=True, help="Headline (plain text).")
@click.option("--url", required=True, help="The article's absolute http(s) address.")
@click.option("--summary", default=None, help="Summary; HTML is sanitized.")
@click.option("--published", default=None,
              help="ISO 8601; without an offset it is in DIGEST_TIMEZONE. Default: now.")
@click.option("--topics", default=None, help="Comma-separated topics.")
@click.option("--image", default=None, help="Absolute http(s) URL of an image.")
@click.option("--author", default=None)
@pass_app
def articles_add(app: App, title: str, url: str, summary: str | None, published: str | None,
                 topics: str | None, image: str | None, author: str | None) -> None:
    """Add one article by hand (adding the same URL again updates it).

    \b
    Example:
      digest articles add --title "Ședința consiliului" --url https://stiri.example.ro/a/7 \\
        --published 2024-05-01T09:30 --topics local,politica
    """
    record = {"title": title, "url": url, "summary": summary, "published_at": published,
              "topics": topics, "image_url": image, "author": author}
    data = record_to_article(record, app.settings.timezone)
    with app.sessions.begin() as session:
        change, article = upsert_article(session, data)
    click.echo(f"{change.value.capitalize()}: {article.url}")


@articles_group.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@TEXT_OR_JSON
@pass_app
def articles_import(app: App, file: io.TextIOWrapper, fmt: str) -> None:
    """Import articles from a JSON array or JSON Lines FILE (`-` reads stdin).

    Each object: {url, title, summary?, content_html?, published_at?, author?, topics?,
    image_url?, guid?}. Bad records are reported with their position and skipped; the rest are
    kept; importing again updates articles in place. Exits 1 if any record was bad.

    \b
    Example:
      digest articles import articles.json
      curl -s https://cms.example.ro/export.jsonl | digest articles import -
    """
    report = import_articles(app.sessions, file, default_tz=app.settings.timezone,
                             on_problem=lambda p: click.echo(str(p), err=True))
    finish_import(report, fmt)


@articles_group.command("list")
@click.option("--since", default=None, help="Only articles published at or after (ISO 8601).")
@click.option("--topic", default=None, help="Only articles with this topic.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="json and csv are for scripts.")
@pass_app
def articles_list(app: App, since: str | None, topic: str | None, limit: int | None,
                  fmt: str) -> None:
    """List articles, newest first.

    \b
    Example:
      digest articles list --since 2024-05-01T00:00:00+03:00 --topic sport --format json
    """
    start = parse_datetime(since, app.settings.timezone) if since else None
    with app.sessions() as session:
        rows = (article_as_dict(a)
                for a in list_articles(session, since=start, topic=topic, limit=limit))
        count = print_rows(rows, ARTICLE_COLUMNS, fmt)
    if fmt == "table":
        click.echo(f"{count} article(s)", err=True)
