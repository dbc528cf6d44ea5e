"""Flows that vendor rules derive from a data set's records, as columns.

Cisco ASA NSEL (:mod:`flowpipe.decode.nsel`) and reverse biflow counters
(:mod:`flowpipe.decode.reverse`) do not make one flow per record: a record may make none, one, or
two (its reverse direction, endpoints swapped), with counters the rules work out. The decoder
works that out for a whole data set at once (:class:`Derived`: which record each flow comes from,
whether it is seen the other way, its counters and TCP flags) and hands the set on as a
:class:`VendorChunk`, which :class:`flowpipe.decode.columns.Columns` reads like any other: its
records taken flow by flow, the swapped ones with their endpoint fields exchanged
(:func:`mirror_names`: a template whose other values share those fields' bytes keeps flow
tuples). Flow tuples of such a chunk (for records the columns cannot hold) are the record
decoder's, derived the same way (:meth:`VendorChunk.rows`).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from flowpipe.decode.columns import BYTES_SLOT, FLAGS_SLOT, KEY_SLOTS, PACKETS_SLOT, Chunk, VectorPlan
from flowpipe.flow import BYTES, DST_IP, EXTRAS, MIRRORED, PACKETS, SRC_IP, TCP_FLAGS, swapped

U64_MAX = np.uint64((1 << 64) - 1)


class Derived(NamedTuple):
    """The flows of a data set's records: per flow, its record (``take``, int64, ascending), whether
    it is the record seen the other way (``swap``), its ``bytes`` and ``packets`` (uint64) and TCP
    ``flags``; ``adds``: record -> the additional fields each flow of it gets where it has none of
    that name (None: none; the template's plan reads the same ones from the records)."""

    take: Any
    swap: Any
    bytes: Any
    packets: Any
    flags: Any
    adds: Callable[[int], dict[str, Any]] | None = None


def counters(p: VectorPlan, records: Any) -> tuple[Any, Any, Any]:
    """The bytes, packets and TCP flags of each record (uint64; 0 where the template has none)."""
    n = len(records)
    return tuple(records[p.names[s]].astype(np.uint64) if s in p.names else np.zeros(n, np.uint64)  # type: ignore[return-value]
                 for s in (BYTES_SLOT, PACKETS_SLOT, FLAGS_SLOT))


def saturated_sum(a: Any, b: Any) -> Any:
    """``a + b`` of uint64 arrays, held at 2**64 - 1 where it would wrap."""
    s = a + b
    return np.where(s < a, U64_MAX, s)


def in_pairs(keep: Any, first: Any, second: Any) -> tuple[Any, Any]:
    """Flows of the records ``keep`` (ascending) that make a flow as they are (``first``) and/or seen
    the other way (``second``), in record order, as it is before the other: (take, swap)."""
    n_out = first.astype(np.int64) + second
    take = np.repeat(keep, n_out)
    swap = np.ones(len(take), dtype=bool)
    swap[(np.cumsum(n_out) - n_out)[first]] = False
    return take, swap


def mirror_names(p: VectorPlan) -> list[tuple[str, str]] | None:
    """The pairs of record fields of ``p.dtype`` to exchange in a flow seen the other way
    (:data:`flowpipe.flow.MIRRORED`); None when the plan cannot: one of a pair is a field and the
    other not, they differ in width, or some other value the plan reads (an additional field, a
    rate, another kept field) comes from their bytes, which a flow seen the other way keeps as
    the record sent it."""
    out: list[tuple[str, str]] = []
    fields: Any = p.dtype.fields
    for a, b in MIRRORED:
        sa, sb = _source(p, a), _source(p, b)
        if sa == sb == ("tuple",):
            continue  # (kept fields the columns take from flow tuples: swapped there)
        if sa[0] == sb[0] == "const" and sa[1] == sb[1]:
            continue
        if sa[0] != "field" or sb[0] != "field" or fields[sa[1]][0] != fields[sb[1]][0]:
            return None
        out.append((sa[1], sb[1]))
    swapped = {name for pair in out for name in pair}
    spans = [(fields[n][1], fields[n][1] + fields[n][0].itemsize) for n in swapped]
    for name, (dt, at, *_) in fields.items():
        if name not in swapped and any(at < end and start < at + dt.itemsize for start, end in spans):
            return None
    return out


def _source(p: VectorPlan, slot: int) -> tuple[Any, ...]:
    """Where the plan reads a field: ("field", name in dtype), ("const", value), ("tuple",)."""
    if slot in p.names:
        return ("field", p.names[slot])
    if slot in KEY_SLOTS:
        return ("const", b"" if slot in (SRC_IP, DST_IP) else 0)  # (absent: the flow tuple's default)
    if p.kept is None:
        return ("tuple",)
    how, v = p.kept[slot]
    return ("const", v) if how == "const" else ("field", v)


class VendorChunk(Chunk):
    """A data set of a template with vendor rules: ``body`` its ``records`` records as they came,
    ``derived`` the flows they make (``count`` of them)."""

    __slots__ = ("derived", "records", "mirror")

    def __init__(self, dec: Any, body: bytes, records: int, derived: Derived, mirror: list[tuple[str, str]],
                 exporter: str, namespace: str, rate: int, samplers: dict[int, int], secs: int, uptime: int,
                 init: int | None) -> None:
        super().__init__(dec, body, records, exporter, namespace, rate, samplers, secs, uptime, init)
        self.records, self.derived, self.mirror = records, derived, mirror
        self.count = len(derived.take)
        if self.unrated:  # (of the flows: the records' unrated ones, as many times as they make flows)
            self.unrated = self.count if self.unrated == records else int(
                np.count_nonzero(self.record_rates(0, records)[derived.take] == 0))

    def last_record(self) -> int:
        return int(self.derived.take[-1])

    def flow_records(self, dtype: Any) -> Any:
        """Each flow's record (of ``dtype``), its mirrored fields exchanged where it is seen the
        other way."""
        d = self.derived
        a = np.frombuffer(self.body, dtype, self.records)[d.take]
        if self.mirror and d.swap.any():
            at = np.flatnonzero(d.swap)
            for x, y in self.mirror:
                vx, vy = a[x][at], a[y][at]
                a[x][at], a[y][at] = vy, vx
        return a

    def rows(self) -> list[tuple | None]:
        """The flows as flow tuples: the record decoder's, derived as the columns are."""
        base = self._decode(self.body)
        if self.error is not None:
            return [None] * self.count
        d = self.derived
        adds = d.adds
        out: list[tuple | None] = []
        for k, s, b, p, fl in zip(d.take.tolist(), d.swap.tolist(), d.bytes.tolist(), d.packets.tolist(),
                                  d.flags.tolist(), strict=True):
            row = base[k]
            extras = row[EXTRAS] if adds is None else with_adds(row[EXTRAS], adds(k))
            if s:
                out.append(swapped(row, b, p, fl)[:EXTRAS] + (extras,))
            else:
                out.append(row[:BYTES] + (b, p) + row[PACKETS + 1:TCP_FLAGS] + (fl,) + row[TCP_FLAGS + 1:EXTRAS]
                           + (extras,))
        return out


def with_adds(own: dict[str, Any] | None, adds: dict[str, Any]) -> dict[str, Any]:
    """A flow's additional fields with ``adds`` where it has none of that name."""
    return {**own, **{k: v for k, v in adds.items() if k not in own}} if own else dict(adds)
