"""The flow context table: each context's key (see :mod:`flowpipe.aggregate.keys`) and its slot in
the accumulator's columns, in the order the contexts were made (a flush visits them in that order).

:data:`ContextTable` is the one the service uses: the compiled one (``flowpipe/aggregate/_tables.c``:
an open-addressing index over the keys held in their slots, ~50 bytes a context where a dict of
``bytes`` keys to slot numbers takes ~140) when it is built, else :class:`PyContextTable`, a dict,
with the same behaviour (the tests hold the two to it).

Both take a batch's keys as one buffer of fixed-width keys (``lookup``, ``insert_many``) and hand
back slots as int64 arrays, so the columnar path makes no object per record.
"""
from __future__ import annotations

from typing import Any

import numpy as np


class PyContextTable:
    """Context keys (``bytes``) to slots, oldest first; slots of removed contexts are reused."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget every context."""
        self._slots: dict[bytes, int] = {}
        self._keys: list[bytes | None] = []
        self._free: list[int] = []

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def capacity(self) -> int:
        """Slots handed out so far: every slot is below it."""
        return len(self._keys)

    def get(self, key: bytes) -> int | None:
        """The slot of ``key``'s context, or None."""
        return self._slots.get(key)

    def add(self, key: bytes) -> int:
        """The slot of ``key``'s context, made (at the end of the order) if new."""
        s = self._slots.get(key)
        if s is None:
            if self._free:
                s = self._free.pop()
                self._keys[s] = key
            else:
                s = len(self._keys)
                self._keys.append(key)
            self._slots[key] = s
        return s

    def lookup(self, keys: Any, width: int, out: Any) -> None:
        """``out[p]``: the slot of key ``p`` of ``keys`` (keys of ``width`` bytes end to end), -1 if absent."""
        out[:] = list(map(self._slots.get, _split(keys, width), [-1] * len(out)))

    def insert_many(self, keys: Any, width: int, positions: Any, out: Any, opened: Any, limit: int) -> int:
        """For each of ``positions`` (ascending) whose key is not held: its context made, ``out[p]`` its
        slot and ``opened[p]`` 1, while fewer than ``limit`` were made (else ``out[p]`` -1); a key made
        earlier in the call gets its slot. Returns how many were made."""
        split = _split(keys, width)
        made = 0
        for p in np.asarray(positions).tolist():
            key = split[p]
            s = self._slots.get(key)
            if s is None and made < limit:
                s = self.add(key)
                made += 1
                opened[p] = 1
            out[p] = -1 if s is None else s
        return made

    def remove(self, slots: Any) -> None:
        """The contexts in these slots are gone."""
        for s in np.asarray(slots).tolist():
            key = self._keys[s]
            if key is None:
                raise KeyError(s)
            del self._slots[key]
            self._keys[s] = None
            self._free.append(s)

    def keys(self, slots: Any) -> list[bytes]:
        """The keys of the contexts in these slots."""
        got = [self._keys[s] for s in np.asarray(slots).tolist()]
        if None in got:
            raise KeyError("no context in that slot")
        return got  # type: ignore[return-value]

    def keys_into(self, slots: Any, width: int, out: Any) -> bool:
        """The keys of the contexts in these slots written end to end into ``out`` (``width`` bytes
        each), when every one is ``width`` bytes long; False when one is not (``out`` then holds nothing
        to read: the compiled table may have written part of it)."""
        got = self.keys(slots)
        if any(len(k) != width for k in got):
            return False
        np.frombuffer(out, np.uint8)[:] = np.frombuffer(b"".join(got), np.uint8)
        return True

    def order(self) -> bytes:
        """The slots held, oldest context first (int64)."""
        return np.fromiter(self._slots.values(), np.int64, len(self._slots)).tobytes()


def _split(keys: Any, width: int) -> list[bytes]:
    data = bytes(keys)
    return [data[a:a + width] for a in range(0, len(data), width)]


try:
    from flowpipe.aggregate._tables import ContextTable  # type: ignore[import-not-found]
except ImportError:  # not built (no C compiler where it was installed): the same behaviour, in Python
    ContextTable = PyContextTable
