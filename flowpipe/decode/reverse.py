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

from flowpipe.decode.elements import VARLEN, Field, split_varlen

REVERSE_PEN, IXIA_PEN = 29305, 3054
# (enterprise, element id) of reverse byte and packet counters, first present wins
REVERSE_BYTES = ((REVERSE_PEN, 1), (REVERSE_PEN, 85), (REVERSE_PEN, 23), (IXIA_PEN, 176))
REVERSE_PACKETS = ((REVERSE_PEN, 2), (REVERSE_PEN, 86), (REVERSE_PEN, 24), (IXIA_PEN, 177))
REVERSE_FLAGS = (REVERSE_PEN, 6)


def swapped(row: Sequence[Any], nbytes: int, npackets: int, flags: int = 0) -> tuple:
    """The flow of ``row`` seen the other way: endpoints and interfaces swapped, these counters."""
    (ty, exp, ns, rate, direction, start, end, _, _, et, proto, src, dst, sport, dport, smac, dmac, smask,
     dmask, in_if, out_if, _, hop, tos, extras) = row
    return (ty, exp, ns, rate, direction, start, end, nbytes, npackets, et, proto, dst, src, dport, sport, dmac,
            smac, dmask, smask, out_if, in_if, flags, hop, tos, extras)


class FieldReader:
    """Reads a few integer fields (1..8 bytes) of every record of a data set, by field index."""

    __slots__ = ("want", "lens", "min_len", "st", "pos")

    def __init__(self, fields: Sequence[Field], want: Sequence[int | None]) -> None:
        self.want = tuple(want)
        self.lens = tuple(ln for _, _, ln in fields)
        self.min_len = max(1, sum(1 if ln == VARLEN else ln for ln in self.lens))
        self.st: struct.Struct | None = None
        self.pos: dict[int, int] = {}
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

    __slots__ = ("reader",)

    def __init__(self, reader: FieldReader) -> None:
        self.reader = reader

    def flows(self, rows: list[tuple], body: bytes) -> list[tuple]:
        """``rows`` with, after each, its reverse flow when the record counted a reverse direction."""
        out: list[tuple] = []
        for row, (nb, npk, fl) in zip(rows, self.reader.read(body), strict=False):
            out.append(row)
            if nb or npk:
                out.append(swapped(row, nb or 0, npk or 0, fl or 0))
        return out


def of(fields: Sequence[Field]) -> Reverse | None:
    b, p = first(fields, REVERSE_BYTES), first(fields, REVERSE_PACKETS)
    if b is None and p is None:
        return None
    return Reverse(FieldReader(fields, (b, p, first(fields, (REVERSE_FLAGS,)))))
