"""``digest check``: render sample messages with this installation's templates and settings and
run the standards checklist (DESIGN.md) on each; print what fails, exit 1 if anything does.

The logic lives in ``digest.render.samples`` and ``digest.render.checklist``; ``digest send``
runs the same checklist before it sends and refuses when something required is missing.
"""

from __future__ import annotations

import click

from digest.cli.context import App, pass_app
from digest.cli.output import TEXT_OR_JSON, echo_json
from digest.render.samples import check_samples

__all__ = ["check"]


@click.command("check")
@TEXT_OR_JSON
@pass_app
def check(app: App, fmt: str) -> None:
    """Render sample digests and check them against the standards checklist.

    Samples: each language, daily and weekly, a new reader, a reader with a topic filter,
    a plain-text-only reader, the longest title; DKIM-signed when DKIM is configured. A
    finding marked REQUIRED would also stop `digest send`. Exit 0 when all pass, 1 otherwise.

    \b
    Examples:
      digest check
      DIGEST_TEMPLATES_DIR=./my-templates digest check --format json
    """
    settings = app.settings
    settings.require_secret_key()
    results = check_samples(settings)
    failed = [r for r in results if not r.ok]
    if fmt == "json":
        echo_json({"passed": len(results) - len(failed), "failed": len(failed),
                   "dkim": settings.dkim_enabled,
                   "samples": [{"name": r.name, "ok": r.ok, "bytes": r.size,
                                "findings": [str(f) for f in r.findings]} for r in results]})
    else:
        for result in results:
            click.echo(f"{'ok  ' if result.ok else 'FAIL'} {result.name} ({result.size:,} bytes)")
            for finding in result.findings:
                click.echo(f"       - {finding}")
        dkim = "DKIM-signed" if settings.dkim_enabled else "DKIM not configured"
        click.echo(f"{len(results) - len(failed)} of {len(results)} sample messages pass "
                   f"the checklist ({dkim}).")
    if failed:
        raise SystemExit(1)
