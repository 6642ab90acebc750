"""Small HTML fixes on rendered text: brackets escaped inside attribute values, and per-reader
values escaped before they are filled into the HTML part.
"""

from __future__ import annotations

import html
import re

__all__ = ["escape_attribute_brackets", "escaped_values"]


# A start tag as an HTML5 serializer writes it: attribute values always double-quoted.
_START_TAG = re.compile(r'<[A-Za-z][\w:-]*(?:\s+[^\s"\'>/=]+(?:="[^"]*")?)*\s*/?>')


def escape_attribute_brackets(html_text: str) -> str:
    """Escape ``<`` and ``>`` inside attribute values (css-inline's serializer leaves them raw,
    which is valid HTML but trips naive filters: an alt text must not read like a tag)."""
    def fix(match: re.Match[str]) -> str:
        tag = match.group()
        inner = tag[1:-1].replace("<", "&lt;").replace(">", "&gt;")
        return f"<{inner}>"
    return _START_TAG.sub(fix, html_text)


def escaped_values(values: dict[str, str]) -> dict[str, str]:
    """Per-reader values as they go into the HTML part."""
    return {k: html.escape(v, quote=True) for k, v in values.items()}
