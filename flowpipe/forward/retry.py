"""Retry policy for backend requests: which answers are retried, and how long to wait.

Connection errors, timeouts, 408, 429 and every status outside 2xx/4xx are retried; any other
4xx is permanent (the same batch would be refused again). Delays grow exponentially from
``initial`` to ``maximum`` with jitter; a ``Retry-After`` answer (seconds or HTTP-date) is
honoured up to ``retry_after_max``.
"""
from __future__ import annotations

import email.utils
import enum
import random
import time

RETRYABLE_4XX = frozenset({408, 429})


class Outcome(enum.Enum):
    SENT = "sent"
    RETRY = "retry"
    PERMANENT = "permanent"


def classify(status: int) -> Outcome:
    """What an HTTP status means for the batch that got it."""
    if 200 <= status < 300:
        return Outcome.SENT
    if 400 <= status < 500 and status not in RETRYABLE_4XX:
        return Outcome.PERMANENT
    return Outcome.RETRY


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date); None if unusable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Backoff:
    """Delay before the next attempt after ``failures`` consecutive failures (1, 2, ...)."""

    def __init__(self, initial: float, maximum: float, retry_after_max: float,
                 rng: random.Random | None = None) -> None:
        self.initial, self.maximum, self.retry_after_max = initial, max(initial, maximum), retry_after_max
        self._rng = rng or random.Random()

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Exponential delay with "equal jitter" (between half and all of it), or Retry-After if longer."""
        exp = min(max(failures, 1) - 1, 62)
        base = min(self.maximum, self.initial * (2.0 ** exp))
        wait = base / 2 + self._rng.uniform(0, base / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.retry_after_max))
        return wait
