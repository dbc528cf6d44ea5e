"""The one bound for memo dicts of values that are cheap to recompute (address texts, rule matches, ...).

A memo stays a plain dict, so a hit costs exactly one dict lookup wherever it is read (hot loops
included); only a miss goes through :func:`bounded_put`, which empties the dict when it holds
``limit`` entries before adding the new one. That is the cheapest bound there is (nothing to do on
a hit, no order kept), and the right one where the working set normally fits: past the limit values
are recomputed, never wrong.
"""
from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def bounded_put(cache: dict[K, V], limit: int, key: K, value: V) -> V:
    """``cache[key] = value``, first emptying ``cache`` when it already holds ``limit`` entries; returns ``value``."""
    room(cache, limit)[key] = value
    return value


def room(cache: dict[K, V], limit: int) -> dict[K, V]:
    """``cache``, emptied first when it already holds ``limit`` entries: for a caller that then adds
    entries in bulk (a batch's worth past the limit at most) without a check per entry."""
    if len(cache) >= limit:
        cache.clear()
    return cache
