"""The ``digest`` command line: a click group with one sub-module per area.

This is the only place that turns a ``DigestError`` into an exit code and a message with a hint.
Exit codes: 0 done; 1 some work failed; 2 usage or configuration error; 75 another run holds the
lock -- per command in ``cli.exit_codes``, shown in each ``--help``.

May import: every package (``web`` only from ``digest serve``, so other commands never load
Starlette).
"""

from __future__ import annotations

import sys
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from digest import __version__
from digest.cli.context import App, pass_app
from digest.config.errors import DigestError
from digest.store.faults import database_fault

__all__ = ["main"]


class DigestGroup(click.Group):
    """A group that reports ``DigestError`` as ``Error: ...`` plus its hint, with its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (DigestError, SQLAlchemyError) as raised:
            # A database failure anywhere (disk full, server gone) is said, not a traceback.
            exc = raised if isinstance(raised, DigestError) else database_fault(raised)
            click.echo(f"Error: {exc.message}", err=True)
            if exc.hint:
                click.echo(f"Hint: {exc.hint}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=DigestGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="digest")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Send a news site's daily or weekly email digest.

    \b
    Quick start:
      digest demo                      # everything on a local sink, nothing to configure
      digest init                      # create or upgrade the database
      digest subscribers add ana@example.ro --name "Ana Pop"
      digest run                       # fetch feeds, then send today's digest (cron)

    Settings come from DIGEST_* environment variables, with .env in this folder read first.

    Exit codes: 0 done; 1 some work failed (the output says which); 2 usage or configuration
    error; 75 another run holds the lock. Each command's --help lists its own.
    """
    ctx.obj = app = App()
    ctx.call_on_close(app.close)  # a command leaves no database connection behind


@main.command()
@pass_app
def init(app: App) -> None:
    """Create the database, or upgrade it to the newest schema.

    Safe to run again at any time.

    \b
    Example:
      DIGEST_DATABASE_URL=sqlite:///news.db digest init
    """
    app.init_database()
    click.echo(f"Database ready: {app.engine.url.render_as_string(hide_password=True)}")


def _register() -> None:
    # Imported here so each area's module can import ``main``'s helpers without a cycle.
    from digest.cli import subscribers
    from digest.cli.preview import preview

    main.add_command(subscribers.group)
    main.add_command(preview)

    from digest.cli import articles, feeds

    main.add_command(feeds.feeds_group)
    main.add_command(feeds.fetch)
    main.add_command(articles.articles_group)

    from digest.cli.serve import serve

    main.add_command(serve)

    from digest.cli.check import check

    main.add_command(check)

    from digest.cli import bounces, local, report, sending

    main.add_command(bounces.group)
    main.add_command(report.report)

    for command in (sending.send, sending.run, sending.status, local.sink, local.demo):
        main.add_command(command)

    from digest.cli.exit_codes import document_exit_codes

    document_exit_codes(main)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
