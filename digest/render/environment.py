"""Jinja2 environments for email and web templates.

An operator rebrands by pointing ``DIGEST_TEMPLATES_DIR`` at a folder laid out like the built-in
``templates/`` (``email/...``, ``web/...``): a file found there wins, anything missing falls back to
the built-in template, so a partial copy is enough.

Every environment speaks one language (``digest.render.i18n``): Jinja's i18n extension with
that language's catalog installed, ``lang`` (for ``<html lang>``) and ``language`` (dates,
plurals) as globals. Callers keep one environment per language.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import jinja2

from digest.config.settings import Settings
from digest.render.i18n import Language, language

__all__ = ["BUILTIN_TEMPLATES", "make_environment"]

BUILTIN_TEMPLATES = Path(__file__).parent.parent / "templates"


def make_environment(settings: Settings, area: Literal["email", "web"],
                     lang: Language | None = None) -> jinja2.Environment:
    """An autoescaping environment (HTML and .j2 files) with StrictUndefined: a typo in a
    template fails loudly in tests instead of silently printing nothing in 100,000 emails."""
    search: list[jinja2.BaseLoader] = []
    if settings.templates_dir is not None:
        search.append(jinja2.FileSystemLoader(str(settings.templates_dir / area)))
    search.append(jinja2.FileSystemLoader(str(BUILTIN_TEMPLATES / area)))
    env = jinja2.Environment(
        extensions=["jinja2.ext.i18n"],
        loader=jinja2.ChoiceLoader(search),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "htm", "xml", "html.j2"),
            default_for_string=True, default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    lang = lang or language(settings.locale)
    env.install_gettext_translations(lang.translations, newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(lang=lang.code, language=lang)
    return env
