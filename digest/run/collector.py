"""Fewer garbage collections while a send streams: what the collector would find is not there.

A send allocates millions of short-lived containers (rows, dicts of values, replies) that die
by reference counting; the cyclic collector still runs every 700 net allocations and walks the
young ones, and every so often the whole heap -- SQLAlchemy's and Jinja's objects included.
Measured with ``bench/send.py`` on SQLite, that was about 12 % of the CPU per message.

``fewer_collections`` freezes what exists when the send starts (modules, settings, compiled
templates and statements: never garbage, ``gc.freeze``) and raises the young generation's
threshold for the send's duration, then puts both back. Memory stays bounded: the collector
still runs, every ``YOUNG`` net allocations of container objects instead of every 700.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["YOUNG", "fewer_collections"]

YOUNG = 10_000  # net container allocations between two young collections (CPython: 700)


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
