"""Flow tuples as a record source of a batch, read into columns like any data set.

Most records reach the accumulator undecoded (:mod:`flowpipe.decode.columns`, sFlow's
:mod:`flowpipe.decode.sflow_columns`). The rest were decoded one by one into flow tuples: templates
with variable-length fields or vendor rules (NSEL, reverse biflow), listeners with ``[[sampling]]``
rules or tags, exporters whose data sets must stay in order with those. They travel as a
:class:`Rows` chunk, and :class:`RowColumns` reads them into the same columns, so the accumulator
has one way to aggregate a batch whatever its records came as.
"""
from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any

import numpy as np

from flowpipe.decode import walk
from flowpipe.decode.columns import COUNTER_MAX, NOTHING_SKIPPED, Intern, objects
from flowpipe.flow import (
    BYTES,
    DST_IP,
    END,
    EXPORTER,
    EXTRAS,
    KEY_WIDTH,
    NAMESPACE,
    PACKETS,
    SRC_IP,
    START,
    TCP_FLAGS,
    kept_fields,
)

_TIME_MAX = 1 << 62
# The integers read into columns, (slot, lowest, highest): a flow with a value outside takes the
# one-by-one lane. Key fields: at most their width in the compact key (aggregate/keys.py);
# counters: what numpy sums exactly (decode/columns.py); times and flags: far from 64 bits.
_INTS = (*((i, 0, (1 << 8 * w) - 1) for i, w in KEY_WIDTH.items()),
         (BYTES, 0, COUNTER_MAX - 1), (PACKETS, 0, COUNTER_MAX - 1), (START, -_TIME_MAX, _TIME_MAX),
         (END, -_TIME_MAX, _TIME_MAX), (TCP_FLAGS, 0, _TIME_MAX))
_MAX_GROUPS = 62  # distinct additional-field name sets told apart by extra_bits (the rest: "other")
_ADDRESS = (0, 4, 16)  # address lengths read as columns


class _RowsDecoder:
    """The decoder of a :class:`Rows` chunk: none (no plan; its flow tuples are decoded)."""

    plan = None


ROWS = _RowsDecoder()


class Rows:
    """Flow tuples of one exporter, in arrival order (see the module doc); a chunk like the others."""

    __slots__ = ("flows", "count", "exporter", "namespace", "error", "skipped", "unrated")
    dec = ROWS
    flow_type = ""
    policy = None  # (the listener's sampling rules and tags are in the flows already)
    tuples = True  # (what columns.group tells it by: an exporter's tuples and other chunks stay in order)

    def __init__(self, flows: list[tuple], exporter: str, namespace: str = "", unrated: int = 0) -> None:
        self.flows, self.count = flows, len(flows)
        self.exporter, self.namespace = exporter, namespace
        self.error: BaseException | None = None  # (never: already decoded)
        self.skipped: list[str] = NOTHING_SKIPPED  # (decoded already: skips counted by the decoder)
        self.unrated = unrated  # flows of unknown sampling rate

    def rows(self) -> list[tuple]:
        return self.flows


def rows(flows: list[tuple]) -> list[Rows]:
    """``flows`` as a batch of record sources (one :class:`Rows`; for tools and tests)."""
    return [Rows(flows, "")] if flows else []


def columns_of(flows: list[tuple], in_order: bool = False) -> list[RowColumns]:
    """``flows`` as columns, one :class:`RowColumns` per pair of address lengths, each in arrival
    order (records of different lengths share no context and no rollup address pair: only the
    order their contexts are made in, and so emitted in, differs between lengths); ``in_order``:
    one per run of flows of the same lengths instead, in arrival order (when the contexts they
    make may fill the table: which flows are refused then depends on that order)."""
    if not flows:
        return []
    n = len(flows)
    raw, oks = walk.tuple_columns(flows, _INTS, (SRC_IP, DST_IP))
    c = np.frombuffer(raw, np.int64).reshape(len(_INTS) + 2, n)
    ok = np.frombuffer(oks, np.bool_)
    fam = c[-2] * 65536 + c[-1]
    if (fam == fam[0]).all():
        return [RowColumns(flows, c, ok)]
    if in_order:
        cuts = [0, *(np.flatnonzero(fam[1:] != fam[:-1]) + 1).tolist(), n]
        return [RowColumns(flows[a:b], c[:, a:b], ok[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]
    out = []
    for k in np.unique(fam).tolist():
        at = np.flatnonzero(fam == k)
        out.append(RowColumns([flows[p] for p in at.tolist()], c[:, at], ok[at]))
    return out


def _address(flows: list[tuple], slot: int, width: int, ok: Any) -> Any:
    """The addresses at ``slot`` of flows where all are bytes of ``width`` (-1: not bytes), as a
    ``V4``/``V16`` column; None when empty or of another width (then no flow is ``ok``)."""
    if width == 0:
        return None
    if width not in _ADDRESS:
        ok[:] = False  # (not bytes, or a mapping's odd-length address: keyed one by one)
        return None
    return np.frombuffer(b"".join(map(itemgetter(slot), flows)), f"V{width}")


class RowColumns:
    """Flow tuples of one pair of address lengths as the columns :class:`flowpipe.decode.columns.Columns`
    gives (the same interface); ``ok`` False where a value does not fit them (that flow then takes
    the accumulator's one-by-one lane, exactly as the tuple). ``ints``, ``ok``: their integer
    columns (:data:`_INTS`) and ok bytes as :func:`columns_of` read them."""

    __slots__ = ("flows", "n", "parts", "bytes", "packets", "start", "end", "flags", "ok")

    def __init__(self, flows: list[tuple], ints: Any, ok: Any) -> None:
        self.flows = flows
        self.n = len(flows)
        ok = ok.copy()
        k = len(KEY_WIDTH)  # (the key's integers, in KEY_SLOTS' order, then the merged values)
        self.bytes, self.packets, self.start, self.end, self.flags = ints[k:len(_INTS)]
        ls, ld = int(ints[-2][0]), int(ints[-1][0])  # (one pair of address lengths)
        self.parts: list[Any] = [_address(flows, SRC_IP, ls, ok), _address(flows, DST_IP, ld, ok), *ints[:k]]
        self.ok = ok

    def rows(self) -> list[tuple]:
        return self.flows

    def row(self, p: int) -> tuple:
        return self.flows[p]

    def rows_at(self, positions: Any) -> list[tuple]:
        at = positions.tolist() if hasattr(positions, "tolist") else positions
        return [self.flows[p] for p in at]

    def owner_ids(self, owner: Callable[[str, str], int]) -> Any:
        """The owner id (``owner(namespace, exporter)``) of each flow."""
        flows, n = self.flows, self.n
        ns, ex = list(map(itemgetter(NAMESPACE), flows)), list(map(itemgetter(EXPORTER), flows))
        if ns.count(ns[0]) == n and ex.count(ex[0]) == n:  # (mostly: one exporter's, or a few's in runs)
            return np.full(n, owner(ns[0], ex[0]), dtype=np.int64)
        pairs = list(zip(ns, ex, strict=True))
        ids = {p: owner(*p) for p in dict.fromkeys(pairs)}
        return np.fromiter(map(ids.__getitem__, pairs), np.int64, n)

    def kept_at(self, positions: Any, intern: Intern | None = None) -> tuple[Any, Any]:
        """The kept fields (one tuple per flow, through ``intern`` when given) and the additional
        fields (None when none has any) of the flows at ``positions``."""
        at = self.rows_at(positions)
        kept = list(map(kept_fields, at))
        if intern is not None:
            kept = list(map(intern, kept, kept))
        extras = [f[EXTRAS] for f in at]
        return objects(kept), (None if extras.count(None) == len(extras) else objects(extras))

    def extra_bits(self) -> tuple[Any, tuple[tuple[str, ...], ...]] | None:
        """Which additional fields each flow has: bit k when its names are ``groups[k]`` (the distinct
        name sets, up to :data:`_MAX_GROUPS`), the bit after the last for any other; None: none has."""
        extras = list(map(itemgetter(EXTRAS), self.flows))
        if extras.count(None) == self.n or not any(extras):
            return None
        listed: list[tuple[str, ...]] = []
        bit_of: dict[tuple[str, ...], int] = {}  # names in a record's order -> its bit

        def bit(d: dict[str, Any] | None) -> int:
            if not d:
                return 0
            names = tuple(d)
            b = bit_of.get(names)
            if b is None:
                if len(listed) < _MAX_GROUPS:
                    listed.append(names)
                    b = bit_of[names] = 1 << (len(listed) - 1)
                else:
                    b = 1 << _MAX_GROUPS  # "other": bit len(groups), as _MAX_GROUPS are listed
            return b

        bits = np.fromiter(map(bit, extras), np.int64, self.n)
        return bits, tuple(listed)

    def extras_at(self, positions: Any) -> list[dict[str, Any] | None]:
        return list(map(itemgetter(EXTRAS), self.rows_at(positions)))

    def failed(self) -> list[Any]:
        """(Flow tuples are decoded already: nothing can fail here.)"""
        return []

    def failed_positions(self) -> Any:
        return np.zeros(self.n, dtype=bool)
