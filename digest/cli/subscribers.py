"""``digest subscribers ...``: add, list, show, unsubscribe, delete, import, export."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from sqlalchemy import select

from digest.cli.context import App, pass_app
from digest.cli.output import FORMAT_OPTION, TEXT_OR_JSON, echo_json, finish_import, print_rows
from digest.readers import lifecycle as subs
from digest.readers.csv_io import export_subscribers, import_subscribers
from digest.store.models import Frequency, Subscriber, SubscriberStatus
from digest.topics import parse_topics

__all__ = ["group"]

LIST_COLUMNS = ["email", "name", "status", "topics", "frequency", "timezone", "send_hour",
                "locale", "created_at"]


@click.group("subscribers")
def group() -> None:
    """Manage the people who receive the digest.

    \b
    Examples:
      digest subscribers add ana@example.ro --name "Ana Pop" --topics sport,local
      digest subscribers list --status active --format json
      digest subscribers import people.csv
    """


@group.command("add")
@click.argument("email")
@click.option("--name", help="Display name, e.g. 'Ștefan Mureșan'.")
@click.option("--topics", default="", help="Comma-separated topics; none means all articles.")
@click.option("--frequency", type=click.Choice([f.value for f in Frequency]), default="daily",
              show_default=True)
@click.option("--timezone", help="IANA time zone, e.g. Europe/Bucharest.")
@click.option("--send-hour", help="Local hour (0-23) the digest goes out in the reader's "
                                  "timezone (default: DIGEST_SEND_HOUR).")
@click.option("--locale", help="Language tag, e.g. ro or en-GB.")
@click.option("--pending", is_flag=True, help="Add as pending (awaiting confirmation).")
@pass_app
def add(app: App, email: str, name: str | None, topics: str, frequency: str,
        timezone: str | None, send_hour: str | None, locale: str | None,
        pending: bool) -> None:
    """Add one subscriber (active unless --pending).

    \b
    Examples:
      digest subscribers add ion@bücher.de --name "Ion Popescu" --frequency weekly
      digest subscribers add kenji@example.jp --timezone Asia/Tokyo --send-hour 6
    """
    status = SubscriberStatus.PENDING if pending else SubscriberStatus.ACTIVE
    with app.sessions.begin() as session:
        sub = subs.add_subscriber(session, email, name=name, topics=parse_topics(topics),
                                  frequency=Frequency(frequency), timezone=timezone,
                                  locale=locale, status=status, origin=subs.Origin("cli"),
                                  allow_reserved=app.settings.allow_reserved_domains,
                                  send_hour=send_hour)
        click.echo(f"Added {sub.email} ({sub.status.value}).")


@group.command("list")
@click.option("--status", type=click.Choice([s.value for s in SubscriberStatus]),
              help="Only subscribers in this state.")
@FORMAT_OPTION
@pass_app
def list_(app: App, status: str | None, fmt: str) -> None:
    """List subscribers.

    \b
    Example:
      digest subscribers list --status active --format csv > active.csv
    """
    query = select(Subscriber).order_by(Subscriber.id).execution_options(yield_per=1000)
    if status:
        query = query.where(Subscriber.status == SubscriberStatus(status))
    with app.sessions() as session:
        rows = (subs.as_dict(s) for s in session.scalars(query))
        count = print_rows(rows, LIST_COLUMNS, fmt)
    if fmt == "table":
        click.echo(f"{count} subscriber(s)", err=True)


@group.command("show")
@click.argument("email")
@TEXT_OR_JSON
@pass_app
def show(app: App, email: str, fmt: str) -> None:
    """Show one subscriber with their consent history.

    \b
    Example:
      digest subscribers show ana@example.ro
    """
    with app.sessions() as session:
        sub = subs.get_subscriber(session, email)
        data = subs.as_dict(sub)
        data["consent_history"] = subs.consent_history(session, sub)
    if fmt == "json":
        echo_json(data)
        return
    for key, value in data.items():
        if key != "consent_history":
            shown = ",".join(value) if isinstance(value, list) else value
            click.echo(f"{key + ':':17}{'' if shown is None else shown}")
    click.echo("consent history:")
    for e in data["consent_history"]:
        extra = " ".join(f"{k}={e[k]}" for k in ("ip", "detail") if e[k])
        click.echo(f"  {e['at']}  {e['kind']:<12} {e['source']:<10} {extra}".rstrip())


@group.command("unsubscribe")
@click.argument("email")
@pass_app
def unsubscribe(app: App, email: str) -> None:
    """Stop sending to EMAIL (kept on record as unsubscribed).

    \b
    Example:
      digest subscribers unsubscribe ana@example.ro
    """
    with app.sessions.begin() as session:
        sub = subs.get_subscriber(session, email)
        changed = subs.unsubscribe(session, sub, subs.Origin("cli"))
    click.echo(f"Unsubscribed {sub.email}." if changed else f"{sub.email} was already out.")


@group.command("delete")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def delete(app: App, email: str, yes: bool) -> None:
    """Erase EMAIL's personal data; keep only a hash so it is never re-added by accident.

    \b
    Example:
      digest subscribers delete ana@example.ro --yes
    """
    if not yes and sys.stdin.isatty():
        click.confirm(f"Erase {email} and all its data?", abort=True)
    with app.sessions.begin() as session:
        sub = subs.get_subscriber(session, email)
        address = sub.email
        subs.erase(session, sub, subs.Origin("cli"))
    click.echo(f"Erased {address}; the address is now suppressed.")


@group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--status", type=click.Choice(["active", "pending"]), default="active",
              show_default=True, help="Status for rows without a status column.")
@TEXT_OR_JSON
@pass_app
def import_(app: App, file: Path, status: str, fmt: str) -> None:
    """Import subscribers from a CSV file with a header row (column `email` required).

    Optional columns: name, topics, frequency, timezone, send_hour, locale, status. Comma or
    semicolon separated, UTF-8 with or without BOM. Bad rows are reported and skipped; the rest
    are kept. Rerunning the same file changes nothing.

    \b
    Example:
      digest subscribers import people.csv
    """
    report = import_subscribers(app.sessions, file, default_status=SubscriberStatus(status),
                                allow_reserved=app.settings.allow_reserved_domains,
                                on_problem=lambda p: click.echo(str(p), err=True))
    finish_import(report, fmt, skipped=report.invalid + report.duplicates)


@group.command("export")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)
@pass_app
def export(app: App, file: Path | None, fmt: str) -> None:
    """Export subscribers as CSV (or JSON) to FILE or stdout; `import` reads the CSV back.

    \b
    Example:
      digest subscribers export backup.csv
    """
    count = export_subscribers(app.sessions, file, fmt)
    if file is not None:
        click.echo(f"Exported {count} subscriber(s) to {file}.", err=True)
