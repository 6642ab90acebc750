"""``digest sink`` and ``digest demo``: try digest on this machine, nothing to configure.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

__all__ = ["demo", "sink"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=1025, show_default=True, type=int)
@click.option("--dir", "folder", default="outbox", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
def sink(host: str, port: int, folder: Path) -> None:
    """A local SMTP server that saves every message it gets as a .eml file (one per
    recipient) and prints a line per message. It relays nothing. Ctrl-C stops it.

    \b
    Example:
      digest sink --port 1025 --dir outbox
      DIGEST_SMTP_HOST=127.0.0.1 DIGEST_SMTP_PORT=1025 DIGEST_SMTP_SECURITY=none digest send
    """
    from digest.transport.sink import Sink

    stop = threading.Event()
    # Ctrl-C and SIGTERM (systemd, kill) both just set the event: the server then stops in the
    # main thread's own time, never with a KeyboardInterrupt raised in the middle of something.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with Sink(folder, host=host, port=port, on_message=lambda line: click.echo(line)):
        click.echo(f"Listening on {host}:{port}; saving to {folder.resolve()} (Ctrl-C stops)")
        while not stop.wait(0.5):
            pass
    click.echo("Stopped.")


@click.command()
@click.option("--dir", "folder", default=".", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where the demo database and outbox go.")
def demo(folder: Path) -> None:
    """The whole job locally, nothing to configure: sample articles and readers in a SQLite
    file, a local SMTP sink, today's digest sent through it. .env is ignored.

    \b
    Example:
      mkdir try-digest && cd try-digest && digest demo
    """
    from digest.run.demo import DATABASE, run_demo

    folder.mkdir(parents=True, exist_ok=True)
    result = run_demo(folder, on_message=lambda line: click.echo(f"  received {line}"))
    click.echo(result.report.summary())
    if result.report.error is not None:
        raise result.report.error
    if result.files:
        click.echo(f"\n{len(result.files)} message(s) saved in {result.outbox}/")
        click.echo("Preview one: open it in a mail program (Thunderbird, Apple Mail, Outlook),")
        click.echo(f"or read the raw message:  less {result.files[0]}")
    else:
        click.echo(f"\nToday's demo digest was sent already (see {result.outbox}/); delete "
                   f"{DATABASE} to start over.")
