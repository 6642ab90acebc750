"""Space sends evenly at ``DIGEST_SEND_RATE`` per second, and slow down when throttled."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Spaces sends evenly at ``rate`` per second (0 = no cap); ``slow_down`` halves it."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._next = 0.0
        self._started = clock()
        self._count = 0

    def take(self) -> float:
        """Count one send; return how many seconds it must wait first (0: go now)."""
        self._count += 1
        now = self._clock()
        if self._next <= now:
            self._next = now
        delay = self._next - now
        if self.rate > 0:
            self._next += 1.0 / self.rate
        return delay

    def slow_down(self, pause: float) -> None:
        """The provider is throttling: halve the rate (from the observed one if uncapped),
        and hold every worker for ``pause`` seconds."""
        now = self._clock()
        current = self.rate or self._count / max(now - self._started, 1e-3)
        self.rate = max(current / 2, 0.5)
        self._next = max(self._next, now + pause)
