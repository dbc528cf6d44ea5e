"""Structured, rate-limited logging to stderr.

Lines read ``level=warning event=decode_error flow_type=ipfix reason=short exporter=192.0.2.1``.
On hot paths use :class:`RateLimited`, which lets a few lines per event through each interval
and counts the rest (``flowpipe_log_messages_suppressed_total{event}``).
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Any

from flowpipe.cache import bounded_put

log = logging.getLogger("flowpipe")
MAX_EVENTS = 1000  # event names a RateLimited keeps windows for (emptied past it)


def _fmt(v: Any) -> str:
    s = str(v)
    return f'"{s}"' if (" " in s or "=" in s or not s) else s


class _KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        head = f"ts={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} level={record.levelname.lower()}"
        msg = record.getMessage()
        out = f"{head} event={msg}" + "".join(f" {k}={_fmt(v)}" for k, v in fields.items())
        if record.exc_info:
            out += "\n" + self.formatException(record.exc_info)
        return out


def setup(level: str = "INFO") -> None:
    """Send flowpipe's logs to stderr as key=value lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_KeyValueFormatter())
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def event(level: int, name: str, exc_info: bool | BaseException = False, **fields: Any) -> None:
    log.log(level, name, extra={"fields": fields}, exc_info=exc_info)


class RateLimited:
    """At most ``burst`` lines per event name every ``interval`` seconds; the rest are counted."""

    def __init__(self, suppressed_counter: Any = None, burst: int = 5, interval: float = 10.0) -> None:
        self.burst, self.interval = burst, interval
        self._counter = suppressed_counter
        self._windows: dict[str, list[float]] = {}

    def __call__(self, level: int, name: str, exc_info: bool | BaseException = False, **fields: Any) -> None:
        now = time.monotonic()
        w = self._windows.get(name)
        if w is None or now - w[0] >= self.interval:
            if w is not None and w[2] > 0:
                event(logging.INFO, "log_suppressed", suppressed_event=name, count=int(w[2]))
            # event names are code constants, but the windows stay bounded all the same
            w = bounded_put(self._windows, MAX_EVENTS, name, [now, 0.0, 0.0])
        if w[1] < self.burst:
            w[1] += 1
            event(level, name, exc_info=exc_info, **fields)
        else:
            w[2] += 1
            if self._counter is not None:
                self._counter.labels(name).inc()
