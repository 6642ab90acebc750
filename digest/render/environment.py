"""Jinja2 environments for email and web templates.

An operator rebrands by pointing ``DIGEST_TEMPLATES_DIR`` at a folder laid out like the built-in
``templates/`` (``email/...``, ``web/...``): a file found there wins, anything missing falls back to
the built-in template, so a partial copy is enough.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import jinja2

from digest.config.settings import Settings

__all__ = ["BUILTIN_TEMPLATES", "make_environment"]

BUILTIN_TEMPLATES = Path(__file__).parent.parent / "templates"


def make_environment(settings: Settings, area: Literal["email", "web"]) -> jinja2.Environment:
    """An autoescaping environment (HTML and .j2 files) with StrictUndefined: a typo in a
    template fails loudly in tests instead of silently printing nothing in 100,000 emails."""
    search: list[jinja2.BaseLoader] = []
    if settings.templates_dir is not None:
        search.append(jinja2.FileSystemLoader(str(settings.templates_dir / area)))
    search.append(jinja2.FileSystemLoader(str(BUILTIN_TEMPLATES / area)))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(search),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "htm", "xml", "html.j2"),
            default_for_string=True, default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
