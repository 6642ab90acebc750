"""``digest bounces process | fetch | list``: the mailed half of the feedback loop.

``process`` is what an MTA calls with one message on stdin (Postfix ``pipe``, ``.forward``,
procmail). It exits 0 for anything it could read -- a bounce, a complaint, an auto-reply or
mail it does not understand -- so the MTA never re-queues it; bytes that are not a message
exit 2 with a hint, and so does a database that is not there.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from digest.cli.context import App, pass_app
from digest.cli.output import TEXT_OR_JSON, echo_json, print_rows
from digest.config.errors import InvalidInput

__all__ = ["group"]


@click.group("bounces")
def group() -> None:
    """Bounces and complaints that arrive after the SMTP server said 250.

    \b
    Examples:
      digest bounces process bounce.eml --format json
      digest bounces fetch
      digest bounces list --since 2026-11-01
    """


def _read(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    path = Path(source)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"Cannot read {source}: {exc.strerror}.",
                           "give the path of one message, or - for stdin") from None


@group.command("process")
@click.argument("source", default="-", metavar="[FILE|-]")
@click.option("--dry-run", is_flag=True, help="Say what the message is; change nothing.")
@click.option("--to", "envelope_to", default=None, metavar="ADDRESS",
              help="The address the MTA delivered it to (Postfix: ${original_recipient}); "
                   "finds the VERP token when the headers do not show it.")
@TEXT_OR_JSON
@pass_app
def process(app: App, source: str, dry_run: bool, envelope_to: str | None, fmt: str) -> None:
    """Process one DSN, ARF complaint, auto-reply or other message (stdin by default).

    Exits 0 for any message it could read, recognised or not, so the MTA never re-queues it.

    \b
    Examples:
      digest bounces process bounce.eml --format json
      # Postfix master.cf:  digest-bounces unix - n n - - pipe
      #   user=digest argv=/srv/digest/.venv/bin/digest bounces process
      #   --to ${original_recipient}
    """
    from digest.feedback.parse import parse_message
    from digest.feedback.processor import Processed, process_message

    raw = _read(source)
    if dry_run:
        done = Processed(parse_message(raw, envelope_to), ())
    else:
        done = process_message(app.sessions, app.settings, raw, envelope_to=envelope_to)
    if fmt == "json":
        payload = done.as_dict()
        if dry_run:
            payload["findings"] = [{"recipient": f.recipient, "kind": f.kind.value,
                                    "status": f.status, "diagnostic": f.diagnostic}
                                   for f in done.report.findings]
            payload["recipient"] = next((f.recipient for f in done.report.findings), None)
        echo_json(payload)
    else:
        click.echo(done.summary())


@group.command("fetch")
@TEXT_OR_JSON
@pass_app
def fetch(app: App, fmt: str) -> None:
    """Poll the bounce mailbox (DIGEST_BOUNCE_IMAP_*) over TLS: process every message in it and
    move each to the processed or unrecognized folder (created when missing).

    \b
    Example:
      DIGEST_BOUNCE_IMAP_HOST=imap.example.org DIGEST_BOUNCE_IMAP_USER=bounces \\
        DIGEST_BOUNCE_IMAP_PASSWORD=... digest bounces fetch
    """
    from digest.feedback.imap import fetch_mailbox

    result = fetch_mailbox(app.sessions, app.settings)
    if fmt == "json":
        echo_json(result.as_dict())
    else:
        for line in result.lines:
            click.echo(line)
        click.echo(result.summary())


@group.command("list")
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]), default=None,
              help="Only events received on or after this date (UTC).")
@click.option("--limit", default=1000, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="json and csv are for scripts.")
@pass_app
def list_events(app: App, since: dt.datetime | None, limit: int, fmt: str) -> None:
    """Recent bounces and complaints, newest first, with what each changed.

    \b
    Examples:
      digest bounces list --since 2026-11-01
      digest bounces list --format json
    """
    from digest.feedback.rates import recent_events

    start = since.replace(tzinfo=dt.UTC) if since else None
    with app.sessions() as session:
        rows = recent_events(session.connection(), start, limit)
    if fmt == "json":
        echo_json(rows)
        return
    print_rows(rows, ["received_at", "kind", "recipient", "status", "action", "source",
                      "edition_id"], fmt)
