"""A bounded cache whose entries expire: least recently used entries go first when it is full."""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlLruCache(Generic[K, V]):
    """At most ``max_size`` entries, each valid until its own expiry time.

    ``get`` returns ``None`` for a missing or expired entry (and drops the latter) and marks a hit
    as recently used; ``put`` evicts the least recently used entries past ``max_size``. Expired
    entries that are never read again leave by LRU eviction. ``clock`` gives seconds (monotonic).
    """

    __slots__ = ("_data", "max_size", "clock")

    def __init__(self, max_size: int, clock: Callable[[], float] = time.monotonic) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._data: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self.max_size = max_size
        self.clock = clock

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: K) -> V | None:
        """The value if present and not expired, else None."""
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= self.clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return item[0]

    def put(self, key: K, value: V, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds (nothing is stored when ``ttl`` <= 0)."""
        if ttl <= 0:
            self._data.pop(key, None)
            return
        self._data[key] = (value, self.clock() + ttl)
        self._data.move_to_end(key)
        while len(self._data) > self.max_size:
            self._data.popitem(last=False)

    def peek(self, key: K) -> tuple[V, float] | None:
        """(value, seconds left) without touching recency or dropping expired entries."""
        item = self._data.get(key)
        return None if item is None else (item[0], item[1] - self.clock())

    def purge_expired(self) -> int:
        """Drop every expired entry; returns how many went (O(n): for occasional sweeps)."""
        now = self.clock()
        dead = [k for k, (_, exp) in self._data.items() if exp <= now]
        for k in dead:
            del self._data[k]
        return len(dead)

    def clear(self) -> None:
        self._data.clear()
