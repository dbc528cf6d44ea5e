"""Reverse counters of bidirectional records, as flows of their own (``listeners.reverse_flows``).

A biflow record (RFC 5103) counts both directions of a conversation: the forward direction in the
usual elements, the reverse one in the same element ids under enterprise 29305
(reverseOctetDeltaCount 29305/1, reversePacketDeltaCount 29305/2, totals 29305/85 and 29305/86,
reverseTcpControlBits 29305/6). IXIA exports reverse deltas as its own elements (enterprise 3054:
ixiaRevOctetDeltaCount 176, ixiaRevPacketDeltaCount 177). With ``reverse_flows`` on, such a record
also yields the reverse direction as a flow: source and destination (addresses, ports, MACs,
masks) and the interfaces swapped, the reverse bytes and packets, the reverse TCP flags when sent.
A record whose reverse counters are all zero yields no reverse flow.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from flowpipe.decode.derived import Derived, in_pairs
from flowpipe.decode.elements import VARLEN, Field, split_varlen
from flowpipe.flow import swapped

REVERSE_PEN, IXIA_PEN = 29305, 3054
# (enterprise, element id) of reverse byte and packet counters, first present wins
REVERSE_BYTES = ((REVERSE_PEN, 1), (REVERSE_PEN, 85), (REVERSE_PEN, 23), (IXIA_PEN, 176))
REVERSE_PACKETS = ((REVERSE_PEN, 2), (REVERSE_PEN, 86), (REVERSE_PEN, 24), (IXIA_PEN, 177))
REVERSE_FLAGS = (REVERSE_PEN, 6)


class FieldReader:
    """Reads a few integer fields (1..8 bytes) of every record of a data set, by field index."""

    __slots__ = ("want", "lens", "min_len", "st", "pos", "dtype")

    def __init__(self, fields: Sequence[Field], want: Sequence[int | None]) -> None:
        self.want = tuple(want)
        self.lens = tuple(ln for _, _, ln in fields)
        self.min_len = max(1, sum(1 if ln == VARLEN else ln for ln in self.lens))
        self.st: struct.Struct | None = None
        self.pos: dict[int, int] = {}
        # the wanted fields as numpy reads them (fixed-length records, integers of 1, 2, 4 or 8 bytes)
        self.dtype: np.dtype[Any] | None = None
        offsets = [sum(self.lens[:i]) for i in range(len(self.lens))]
        wanted = sorted({i for i in self.want if i is not None})
        if VARLEN not in self.lens and all(self.lens[i] in (1, 2, 4, 8) for i in wanted):
            self.dtype = np.dtype({"names": [f"w{i}" for i in wanted],
                                   "formats": [f">u{self.lens[i]}" for i in wanted],
                                   "offsets": [offsets[i] for i in wanted], "itemsize": sum(self.lens)})
        if VARLEN not in self.lens:
            fmt = ["!"]
            for i, ln in enumerate(self.lens):
                if i in self.want:
                    self.pos[i] = len(self.pos)
                    fmt.append(f"{ln}s")
                else:
                    fmt.append(f"{ln}x")
            self.st = struct.Struct("".join(fmt))

    def read(self, body: bytes) -> list[tuple[int | None, ...]]:
        """Per record, the wanted fields' values (None where the index is None or the field is not
        an integer of 1..8 bytes)."""
        out: list[tuple[int | None, ...]] = []
        if self.st is not None:
            size = self.st.size
            if size == 0:
                return out
            end = len(body) - len(body) % size
            for v in self.st.iter_unpack(body[:end]):
                out.append(tuple(None if i is None else _uint(v[self.pos[i]]) for i in self.want))
            return out
        for vals in split_varlen(body, self.lens, self.min_len, []):
            out.append(tuple(None if i is None else _uint(vals[i]) for i in self.want))
        return out

    def arrays(self, body: bytes, count: int) -> list[Any]:
        """The wanted fields of the first ``count`` records of ``body`` as uint64 arrays (None where
        the index is None); only when :attr:`dtype` is not None."""
        a = np.frombuffer(body, self.dtype, count)
        return [None if i is None else a[f"w{i}"].astype(np.uint64) for i in self.want]


def _uint(b: bytes) -> int | None:
    return int.from_bytes(b, "big") if 0 < len(b) <= 8 else None


def first(fields: Sequence[Field], candidates: Sequence[tuple[int, int]]) -> int | None:
    """Index of the first field (in ``candidates`` order) the template has, as an integer."""
    at: dict[tuple[int, int], int] = {}
    for i, (pen, eid, ln) in enumerate(fields):
        if 0 < ln <= 8:
            at.setdefault((pen, eid), i)
    return next((at[c] for c in candidates if c in at), None)


class Reverse:
    """A template's reverse counters (None from :func:`of` when it has none)."""

    __slots__ = ("reader", "mirror")

    def __init__(self, reader: FieldReader) -> None:
        self.reader = reader
        self.mirror: list[tuple[str, str]] | None = []  # fields a flow seen the other way exchanges in its plan

    def flows(self, rows: list[tuple], body: bytes) -> list[tuple]:
        """``rows`` with, after each, its reverse flow when the record counted a reverse direction."""
        out: list[tuple] = []
        for row, (nb, npk, fl) in zip(rows, self.reader.read(body), strict=False):
            out.append(row)
            if nb or npk:
                out.append(swapped(row, nb or 0, npk or 0, fl or 0))
        return out

    def derive(self, body: bytes, count: int, base: tuple[Any, Any, Any]) -> Derived:
        """What :meth:`flows` makes of the first ``count`` records of ``body``, as columns (``base``:
        their bytes, packets and TCP flags, :func:`flowpipe.decode.derived.counters`)."""
        zero = np.zeros(count, dtype=np.uint64)
        nb, npk, fl = (zero if a is None else a for a in self.reader.arrays(body, count))
        take, swap = in_pairs(np.arange(count), np.ones(count, dtype=bool), (nb | npk) != 0)
        b, p, f = base
        return Derived(take, swap, np.where(swap, nb[take], b[take]), np.where(swap, npk[take], p[take]),
                       np.where(swap, fl[take], f[take]))


def of(fields: Sequence[Field]) -> Reverse | None:
    b, p = first(fields, REVERSE_BYTES), first(fields, REVERSE_PACKETS)
    if b is None and p is None:
        return None
    return Reverse(FieldReader(fields, (b, p, first(fields, (REVERSE_FLAGS,)))))
