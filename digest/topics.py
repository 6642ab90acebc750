"""Topics, the one normalisation shared by readers, articles and feeds.

A topic is a trimmed, lower-case word; lists of them are sorted and unique, so that comparing a
reader's topics with an article's is a plain set operation wherever it happens.

May import: nothing else of digest.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["parse_topics"]


def parse_topics(raw: str | Iterable[str] | None) -> list[str]:
    """``"Sport, politics"`` or a list -> ``["politics", "sport"]``: trimmed, lower, unique."""
    items = raw.replace(";", ",").split(",") if isinstance(raw, str) else list(raw or [])
    return sorted({t.strip().lower() for t in items if t and t.strip()})
