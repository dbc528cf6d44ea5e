"""A token bucket for trio tasks: ``rate`` tokens a second, holding at most ``burst``."""
from __future__ import annotations

from collections.abc import Callable

import trio


class TokenBucket:
    """Paces callers to ``rate`` acquisitions a second after an initial ``burst``.

    ``acquire`` waits its turn: waiters are served first come, first served (one waits at a
    time, on a fair lock), and a cancelled waiter consumes no token. ``try_acquire`` never waits.
    The bucket starts full. ``clock`` defaults to trio's clock, so it works with trio's MockClock.
    """

    def __init__(self, rate: float, burst: float = 1.0, clock: Callable[[], float] = trio.current_time) -> None:
        if rate <= 0:
            raise ValueError("rate must be greater than 0")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._tokens = self.burst
        self._stamp: float | None = None
        self._lock = trio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        if self._stamp is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_acquire(self) -> bool:
        """Take a token if one is there now and nobody is queued for one."""
        if self._lock.locked():
            return False
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a token, waiting until one is due."""
        async with self._lock:
            self._refill()
            if self._tokens < 1:
                await trio.sleep((1 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1
