"""``digest serve``: the reader web pages and the one-click unsubscribe endpoint, on uvicorn."""

from __future__ import annotations

import click

from digest.cli.context import App, pass_app

__all__ = ["serve"]


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; keep 127.0.0.1 behind a reverse proxy.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--forwarded-allow-ips", default="127.0.0.1", show_default=True,
              help="Proxies whose X-Forwarded-For is trusted for the reader's IP.")
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="Log every request. Off by default: URLs carry reader tokens and IPs.")
@pass_app
def serve(app: App, host: str, port: int, forwarded_allow_ips: str, access_log: bool) -> None:
    """Serve sign-up, confirm, unsubscribe, preferences, privacy and archive pages.

    DIGEST_BASE_URL is the public address of these pages; put a TLS reverse proxy in front.

    \b
    Example:
      DIGEST_BASE_URL=https://news.example.ro/digest digest serve --port 8000
      curl http://127.0.0.1:8000/healthz
    """
    import uvicorn  # imported here: only this command needs it

    from digest.web import create_app

    app.settings.require_secret_key()
    web = create_app(app.settings, sessions=app.sessions)
    click.echo(f"Serving {app.settings.base_url} on http://{host}:{port} (Ctrl+C stops)",
               err=True)
    uvicorn.run(web, host=host, port=port, proxy_headers=True,
                forwarded_allow_ips=forwarded_allow_ips, access_log=access_log,
                server_header=False, log_level="info")
