"""How the interpreter runs while a send streams: fewer garbage collections, quicker hand-offs
of the interpreter lock. Both are measured with ``bench/send.py``; both are put back after.

**Fewer collections.** A send allocates millions of short-lived containers (rows, dicts of
values, replies) that die by reference counting; the cyclic collector still runs every 700 net
allocations and walks the young ones, and every so often the whole heap -- SQLAlchemy's and
Jinja's objects included: about 12 % of the CPU per message on SQLite. What exists when the
send starts (modules, settings, compiled templates and statements: never garbage) is frozen
(``gc.freeze``) and the young generation's threshold raised. Memory stays bounded: the
collector still runs, every ``YOUNG`` net allocations of container objects instead of 700.

**Quicker hand-offs.** On PostgreSQL the claims and the ledger run on threads of their own
(``run.db_thread``). A thread whose query has answered waits for the interpreter lock until
the event loop lets go of it -- by default up to 5 ms (``sys.getswitchinterval``), and it needs
it a few times per query: the claims then fall behind the sending. ``SWITCH_INTERVAL`` (1 ms)
made the PostgreSQL send 14-16 % faster in the same runs; on SQLite there are no threads.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator

__all__ = ["SWITCH_INTERVAL", "YOUNG", "tuned_for_sending"]

YOUNG = 10_000  # net container allocations between two young collections (CPython: 700)
SWITCH_INTERVAL = 0.001  # seconds a thread may hold the interpreter lock when another waits


@contextlib.contextmanager
def tuned_for_sending() -> Iterator[None]:
    thresholds, switch = gc.get_threshold(), sys.getswitchinterval()
    gc.freeze()
    gc.set_threshold(YOUNG, 50, 100)
    sys.setswitchinterval(min(switch, SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(switch)
        gc.set_threshold(*thresholds)
        gc.unfreeze()
