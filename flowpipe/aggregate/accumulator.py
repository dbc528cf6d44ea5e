"""Flow contexts: the Datadog Agent's aggregation, with nothing dropped silently.

A context is keyed by (namespace, exporter, src ip, dst ip, src port, dst port, protocol, tos,
input interface), after port rollup. Its first flow in a window is the accumulator; later flows
add bytes and packets, widen start/end, OR the TCP flags and add additional fields not seen yet.
A new context is emitted at the next tick, then every ``flush_interval`` on its own cadence while
it gets flows; a context with no flow for ``flow_context_ttl`` after its last emission is dropped.
Unlike the Agent, everything held is emitted at shutdown (:meth:`Accumulator.drain`).

Layout, for speed and memory (135-166 bytes a context at 1 M contexts; ~800 as Python objects):
``contexts`` (the compiled table, :mod:`flowpipe.aggregate.contexts`) holds each key in its slot
and maps it to the slot number, and a context's state lives in per-field columns at that slot:
bytes, packets, start, end and TCP flags in ``array('q')`` (unboxed; a window holding a value that
does not fit, such as a sum past 2**63, keeps its values as Python ints aside until it is
emptied, and only its own records merge one by one meanwhile), the next emission time in
``array('d')``, which windows are open in a byte column, and in numpy object columns the fields
kept from the window's first flow (type, sampling rate, direction, ether type, MACs, masks,
output interface, next hop) as one shared tuple (equal ones are stored once) and its additional
fields (while the window is empty: the time of its last emission). A flush emits
:class:`flowpipe.flow.FlowColumns`: the keys read back from the table in one buffer, addresses,
ports and counters as numpy arrays, the kept tuples as they are held; no object per flow.

Every flow is observed by the port rollup (:mod:`flowpipe.aggregate.rollup`) before its context
work, a batch at a time and in order: the rollup reads nothing of the contexts, and the context
work reads only the verdicts. How a batch's records (undecoded data sets, sFlow samples, flow
tuples) are taken in bulk with the same outcome: :meth:`Accumulator.add`; the per-record
reference it is tested against: :mod:`flowpipe.aggregate.reference`.
"""
from __future__ import annotations

import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, MutableSequence
from typing import Any

import numpy as np

from flowpipe.aggregate.cadence import Cadence
from flowpipe.aggregate.config import AggregatorConfig
from flowpipe.aggregate.contexts import ContextTable
from flowpipe.aggregate.keys import Key, KeyCodec
from flowpipe.aggregate.rollup import Trackers, roll_up
from flowpipe.cache import room
from flowpipe.decode import columns, rows
from flowpipe.decode.columns import Chunk
from flowpipe.flow import (
    BYTES,
    DST_IP,
    DST_PORT,
    END,
    EXTRAS,
    PACKETS,
    SRC_IP,
    SRC_PORT,
    START,
    TCP_FLAGS,
    FlowColumns,
    kept_fields,
)

I64_MAX = (1 << 63) - 1
INTERN_MAX = 1 << 18  # distinct kept-field tuples shared before the cache starts over

Column = MutableSequence[Any]


def _view(c: Column) -> Any:
    """A numpy view of an ``array('q')`` column (it cannot grow while the view lives)."""
    return np.frombuffer(c, np.int64)  # type: ignore[call-overload]


def _bview(c: Column) -> Any:
    """A numpy view of an ``array('B')`` column."""
    return np.frombuffer(c, np.uint8)  # type: ignore[call-overload]


def _dview(c: Column) -> Any:
    """A numpy view of an ``array('d')`` column."""
    return np.frombuffer(c, np.float64)  # type: ignore[call-overload]


def _ints() -> Column:
    return array("q")


def _grown(col: Any, n: int) -> Any:
    """An object column of ``n`` slots holding ``col``'s values, then None."""
    out = np.empty(n, dtype=object)  # (None-filled)
    out[:len(col)] = col
    return out


class Accumulator:
    """Holds the flow contexts; pure (no I/O, no clock of its own): callers pass ``now``."""

    def __init__(self, cfg: AggregatorConfig) -> None:
        cadence = Cadence.of(cfg)
        self.interval, self.ttl, self.jitter = cadence.interval, cadence.ttl, cadence.jitter
        self.max_contexts = cfg.max_contexts
        self.rollup = None if cfg.port_rollup_disabled else Trackers(cfg.port_rollup_threshold,
                                                                       cfg.max_rollup_entries)
        self.keys = KeyCodec()
        self._rng = np.random.default_rng()
        self.contexts: Any = ContextTable()  # key (see flowpipe.aggregate.keys) -> slot in the columns
        self.dropped_full = 0  # flows refused because max_contexts was reached
        self.dropped_undecodable = 0  # records of chunks their record decoder failed on (a decoder bug)
        self.decode_errors: list[tuple[Chunk, BaseException]] = []  # those failures, for the stage to log
        self.skipped: Counter[tuple[str, str]] = Counter()  # (flow type, reason): parts skipped decoding chunks
        self.received = 0
        self._clear_columns()

    def _clear_columns(self) -> None:
        self._bytes, self._packets, self._start, self._end, self._flags = (_ints() for _ in range(5))
        # Windows holding a value outside int64 (a sum past 2**63...): slot -> [bytes, packets, start,
        # end, flags] as Python ints, read instead of the columns until the window is emptied.
        self._big: dict[int, list[int]] = {}
        self._next: Column = array("d")    # next emission time
        # Object columns (numpy, so many slots are set or read at once): the window's kept fields, None
        # while it is empty (emitted, no flow since); its additional fields, while it is empty the
        # time of its last emission. They may hold more slots than the others (grown by a quarter).
        self._base: Any = np.empty(0, dtype=object)
        self._isopen: Column = array("B")  # 1 where _base is not None: what numpy reads of it
        self._extras: Any = np.empty(0, dtype=object)
        self._interned: dict[Any, Any] = {}

    # ---- aggregation

    def add(self, chunks: list[Any], now: float | None = None) -> None:
        """Aggregate a batch: its record sources in arrival order, data sets left undecoded
        (:class:`flowpipe.decode.columns.Chunk`, sFlow's samples) and flow tuples
        (:class:`flowpipe.decode.rows.Rows`), as if each record were aggregated at its turn.

        The records of chunks of one layout are read together into columns
        (:func:`flowpipe.decode.columns.group`), observed by the rollup in one call, in record order
        (:meth:`_observe`); keyed with their rolled-up ports, they are of two kinds:

        - *merge*: its context holds an open window: added with numpy, after the others;
        - *the rest*: contexts made in order of first appearance up to ``max_contexts``, windows
          opened by their first record, all at once (:meth:`_settle`); with records numpy cannot
          read among them (a v9 time from before an uptime wrap, a counter near 64 bits, a key
          value wider than the compact key, an sFlow sample of an unusual shape), one by one in
          record order from their flow tuples instead.

        Merges commute (sums, min, max, OR) and change nothing the others read, so doing them last
        is the same as doing them in order; additional fields are joined in record order. Flow
        tuples, and the records of an exporter whose chunks cannot be grouped so (two layouts of
        one address family, or flow tuples and chunks), are read into columns from their flow
        tuples, in order (:func:`flowpipe.decode.rows.columns_of`).
        """
        if now is None:
            now = time.time()
        # (the context table only: a full rollup table is a steady state, and taking its exporters'
        # data sets as flow tuples for good would cost more than the order of its refusals is worth)
        groups, ordered = columns.group(chunks, exact=self._may_fill_table(sum(c.count for c in chunks)))
        if ordered:
            flows: list[tuple] = []
            for c in ordered:
                got = c.rows()
                if c.error is not None:
                    self._undecodable([c], c.count)
                elif c.policy is None:
                    flows += got
                else:
                    flows += map(c.policy.flow, got)
            groups = rows.columns_of(flows, in_order=self._may_fill(len(flows))) + groups
        failed: dict[int, Chunk] = {}
        for cols in groups:
            self._add_columns(cols, now)
            failed.update((id(c), c) for c in cols.failed())
        if failed:
            self._undecodable(list(failed.values()), 0)
        for c in chunks:
            if c.skipped:
                self.skipped.update((c.flow_type, reason) for reason in c.skipped)
                c.skipped = []

    def _may_fill_table(self, n: int) -> bool:
        """``n`` records may fill the context table: which of them are then refused depends on their
        order, even between address families."""
        return n > self.max_contexts - len(self.contexts)

    def _may_fill(self, n: int) -> bool:
        """``n`` records may fill the context table or the rollup's trackers (see
        :meth:`_may_fill_table`)."""
        if self._may_fill_table(n):
            return True
        r = self._tracking()
        return r is not None and r.entries(0) + r.entries(1) + 4 * n > r.max_entries  # (at most 2 per generation)

    def _undecodable(self, chunks: list[Chunk], records: int) -> None:
        """Note chunks whose record decoder raised, and ``records`` of theirs dropped."""
        self.received += records
        self.dropped_undecodable += records
        self.decode_errors += [(c, c.error) for c in chunks if c.error is not None]
        del self.decode_errors[:-16]  # the stage logs them (rate-limited); a few are enough

    def _add_columns(self, cols: columns.Columns, now: float) -> None:
        n = cols.n
        self.received += n
        rollup = self._tracking()
        parts, roll = cols.parts, None
        if rollup is not None:
            verdicts = self._observe(cols, rollup)
            if verdicts.any():
                roll = verdicts
                parts = list(parts)
                for side, v in ((2, 1), (3, 2)):  # the port called ephemeral is keyed as 0, the side in ``roll``
                    col = parts[side]
                    if col is not None:
                        parts[side] = np.where(verdicts == v, 0, col)
        owners = cols.owner_ids(self.keys.owner)
        k = self.keys.of_columns(owners, parts, n, roll=roll)
        keys, width = k.view(np.uint8), k.dtype.itemsize
        idx = np.empty(n, dtype=np.int64)
        self.contexts.lookup(keys, width, idx)
        fast = cols.ok & (idx >= 0)
        if not len(self._isopen):
            fast[:] = False
        else:  # an open window
            fast &= _bview(self._isopen)[idx] != 0
            if self._big:  # windows outside int64 merge one by one
                fast &= ~np.isin(idx, np.fromiter(self._big, np.int64, len(self._big)))
        rest = np.flatnonzero(~fast)
        if len(rest) and cols.ok[rest].all():
            self._settle(cols, keys, width, owners, idx, rest, fast, now)
            rest = rest[:0]
        xb = cols.extra_bits()  # records with additional fields: merged in record order (see _add_extras)
        xk = None if xb is None else xb[0] != 0
        row: Callable[[int], tuple | None] = cols.row  # (rows decoded while observing are kept by cols)
        if len(rest):
            if xk is not None:  # then all of them one by one, at their turn
                moved = np.flatnonzero(fast & xk)
                fast[moved] = False
                rest = np.union1d(rest, moved)
            if len(rest) > n // 2:  # mostly: decode every record at once
                row = cols.rows().__getitem__
            self._one_by_one(rest.tolist(), row, roll, now)
        done = np.flatnonzero(fast)
        if not len(done):
            return
        at = idx[done]
        if xb is not None:
            self._add_extras(cols, done[xk[done]], idx, *xb)  # type: ignore[index]
        if self._big:  # windows that left the columns during this batch: their records one by one
            held = np.isin(at, np.fromiter(self._big, np.int64, len(self._big)))
            if held.any():
                for p, i in zip(done[held].tolist(), at[held].tolist(), strict=True):
                    self._merge_row(i, row(p))
                done, at = done[~held], at[~held]
                if not len(done):
                    return
        nb, npk = cols.bytes[done], cols.packets[done]
        B, P = _view(self._bytes), _view(self._packets)
        if int(B[at].max()) + int(nb.sum()) < I64_MAX and int(P[at].max()) + int(npk.sum()) < I64_MAX:
            S, E, F = _view(self._start), _view(self._end), _view(self._flags)
            np.add.at(B, at, nb)
            np.add.at(P, at, npk)
            np.minimum.at(S, at, cols.start[done])
            np.maximum.at(E, at, cols.end[done])
            fl = cols.flags[done]
            nz = np.flatnonzero(fl)
            if len(nz):
                np.bitwise_or.at(F, at[nz], fl[nz])
            return
        for p, i in zip(done.tolist(), at.tolist(), strict=True):  # near 64 bits: one by one, exactly
            self._merge_row(i, row(p))

    def _observe(self, cols: columns.Columns, rollup: Any) -> Any:
        """The rollup's verdict on every record of ``cols`` (a uint8 array), each observed in record
        order: those numpy read from the columns in one call per run, the others (``ok`` False:
        their columns may not hold their ports) from their flow tuples (decoded here, and kept by
        ``cols``). Of a chunk whose record decoder raises (a bug), the records numpy reads are
        observed, as the failure shows only where a flow tuple is needed; the others are not."""
        n = cols.n
        src, dst, sp, dp = (None if c is None else np.ascontiguousarray(c) for c in cols.parts[:4])
        src = None if src is None else src.view(np.uint8)
        dst = None if dst is None else dst.view(np.uint8)
        sp = None if sp is None else sp.astype(np.uint64)
        dp = None if dp is None else dp.astype(np.uint64)
        ws = 0 if src is None else src.size // n
        wd = 0 if dst is None else dst.size // n

        def run(a: int, b: int) -> bytes:
            if a >= b:
                return b""
            return rollup.observe_columns(None if src is None else src[a * ws:b * ws],  # type: ignore[no-any-return]
                                          None if dst is None else dst[a * wd:b * wd],
                                          None if sp is None else sp[a:b], None if dp is None else dp[a:b], b - a)

        bad = np.flatnonzero(~cols.ok).tolist()
        if not bad:
            return np.frombuffer(run(0, n), np.uint8)
        out = bytearray()
        start = 0
        for p, f in zip(bad, cols.rows_at(bad), strict=True):
            out += run(start, p)
            out.append(0 if f is None else rollup.observe(f[SRC_IP], f[DST_IP], f[SRC_PORT], f[DST_PORT]))
            start = p + 1
        out += run(start, n)
        return np.frombuffer(bytes(out), np.uint8)

    def _one_by_one(self, positions: list[int], row: Callable[[int], tuple | None], roll: Any, now: float) -> None:
        """The records at ``positions`` (ascending), observed already (``roll``: their verdicts, None:
        all 0), merged one by one from their flow tuples; those whose chunk cannot be decoded are
        dropped and counted."""
        verdicts = [0] * len(positions) if roll is None else roll[positions].tolist()
        for p, v in zip(positions, verdicts, strict=True):
            f = row(p)
            if f is None:
                self.dropped_undecodable += 1
                continue
            if v:
                f = roll_up(f, v)
            self._put(f, self.keys.of_flow(f), now)

    def _add_extras(self, cols: columns.Columns, records: Any, idx: Any, bits: Any,
                    groups: tuple[tuple[str, ...], ...]) -> None:
        """The additional fields of records merged with numpy (positions ``records``, ascending), into
        their windows in record order: a field the window lacks is added, one it has is kept. Only
        records with a field their window lacks (``bits``: which fields each has, see
        :meth:`flowpipe.decode.sflow_columns.SampleColumns.extra_bits`) change anything."""
        if not len(records):
            return
        extras = self._extras
        windows, which = np.unique(idx[records], return_inverse=True)
        held = extras[windows].tolist()
        has = np.zeros(len(held), dtype=np.int64)  # a window's fields of no group cover no record's
        for bit, names in enumerate(groups):
            need = frozenset(names)
            found = np.fromiter([type(d) is dict and d.keys() >= need for d in held], bool, len(held))
            has |= found.astype(np.int64) << bit
        records = records[(bits[records] & ~has[which]) != 0]
        for e, i in zip(cols.extras_at(records), idx[records].tolist(), strict=True):
            self._join_extras(i, e)  # type: ignore[arg-type]  # these records have some

    def _merge_row(self, i: int, f: tuple | None) -> None:
        """:meth:`_merge` of a chunk's record (None: its chunk could not be decoded, dropped)."""
        if f is None:
            self.dropped_undecodable += 1
        else:
            self._merge(i, f)

    def _settle(self, cols: columns.Columns, keys: Any, width: int, owners: Any, idx: Any, at: Any, fast: Any,
                now: float) -> None:
        """The context work of records at positions ``at`` (ascending), observed already, keyed by
        ``keys`` (the batch's keys, ``width`` bytes each, ports rolled up or not; ``owners``: their
        owner ids), ``idx`` their slots (-1: none): each context they find gone is made by its first
        record while ``max_contexts`` allows, in order of first appearance (the records of later new
        keys are dropped and counted, as one by one); a window found empty is opened by its first
        record; the others merge (``fast``). The records of a chunk whose record decoder failed on
        a record to open with (a decoder bug) are dropped and counted (:attr:`dropped_undecodable`)."""
        gone = at[idx[at] < 0]
        opened = np.zeros(cols.n, dtype=np.uint8)
        if len(gone):
            room = max(self.max_contexts - len(self.contexts), 0)
            if self.contexts.insert_many(keys, width, gone, idx, opened, room):
                self._fit()
        make = np.flatnonzero(opened)  # the records that made a context (ascending)
        where = idx[at]
        lost = where < 0
        _, first = np.unique(where, return_index=True)
        first = first[where[first] >= 0]
        firsts = at[first]
        reopen = firsts[(_bview(self._isopen)[where[first]] == 0) & (opened[firsts] == 0)]
        intern = self._interner()
        reopening = cols.kept_at(reopen, intern)
        making = cols.kept_at(make, intern)
        if not (reopening[0].astype(bool).all() and making[0].astype(bool).all()):  # a None: an undecodable
            # chunk (a decoder bug): undo, without it
            if len(make):
                self.contexts.remove(idx[make])
            idx[gone] = -1
            keep = ~cols.failed_positions()[at]
            self.dropped_undecodable += int(np.count_nonzero(~keep))
            self._settle(cols, keys, width, owners, idx, at[keep], fast, now)
            return
        if len(make):
            made = idx[make]
            self._open_many(cols, make, made, making)
            _dview(self._next)[made] = now + self._rng.random(len(make)) * self.jitter if self.jitter else now
            self.keys.hold_ids(owners[make])
        if len(reopen):
            self._open_many(cols, reopen, idx[reopen], reopening)
        n_lost = int(lost.sum())
        if n_lost:
            self.dropped_full += n_lost
        fast[at[~lost]] = True
        fast[make] = False
        fast[reopen] = False

    def _open_many(self, cols: columns.Columns, records: Any, at: Any, opening: tuple[Any, Any]) -> None:
        """Open the windows of slots ``at`` with the records at positions ``records`` of ``cols``
        (``opening``: their kept and additional fields, :meth:`Columns.kept_at`, no kept None), values
        from the columns; a window held aside (``_big``) is back in the columns."""
        kept, more = opening
        self._back_in_columns(at)
        self._base[at] = kept
        self._extras[at] = more  # (None: none has any)
        for col, values in ((self._bytes, cols.bytes), (self._packets, cols.packets), (self._start, cols.start),
                            (self._end, cols.end), (self._flags, cols.flags)):
            _view(col)[at] = values[records]
        _bview(self._isopen)[at] = 1

    def _back_in_columns(self, slots: Any) -> None:
        """The windows of these slots (an int64 array) are read from the columns again, not ``_big``."""
        if self._big:
            for i in slots.tolist():
                self._big.pop(i, None)

    def _tracking(self) -> Any:
        """The rollup, unless it is off or its threshold (1) never tracks nor rolls up anything (spec §4)."""
        r = self.rollup
        return r if r is not None and r.threshold > 1 else None

    def _put(self, f: tuple, key: Key, now: float) -> None:
        """A flow (observed already) into the context of ``key``: its window opened or joined, or the
        context made while ``max_contexts`` allows (else the flow is dropped, counted)."""
        contexts = self.contexts
        i = contexts.get(key)
        if i is not None:
            if not self._isopen[i]:
                self._open(i, f)
            else:
                self._merge(i, f)
            return
        if len(contexts) >= self.max_contexts:
            self.dropped_full += 1
            return
        i = contexts.add(key)
        self._fit()
        self._next[i] = now + self._rng.random() * self.jitter if self.jitter else now
        self.keys.hold(key)
        self._open(i, f)

    def _open(self, i: int, f: tuple) -> None:
        """The first flow of a window becomes its accumulator."""
        base = kept_fields(f)
        self._base[i] = self._interner()(base, base)
        self._isopen[i] = 1
        self._extras[i] = f[EXTRAS]
        self._set(i, (f[BYTES], f[PACKETS], f[START], f[END], f[TCP_FLAGS]))

    def _interner(self) -> Callable[[tuple, tuple], tuple]:
        """``setdefault`` of the cache that stores equal kept-field tuples once (bounded per batch)."""
        return room(self._interned, INTERN_MAX).setdefault

    def _set(self, i: int, values: tuple) -> None:
        """The window's values, in the columns or, when one does not fit int64, in ``_big``."""
        try:
            self._bytes[i], self._packets[i], self._start[i], self._end[i], self._flags[i] = values
        except (OverflowError, TypeError):
            self._big[i] = list(values)
            return
        if self._big:
            self._big.pop(i, None)

    def _merge(self, i: int, f: tuple) -> None:
        """A later flow of the window: sums, min start, max end, OR of the flags, new additional fields."""
        held = self._big.get(i) if self._big else None
        b, p, s, e, fl = held if held is not None else (self._bytes[i], self._packets[i], self._start[i], self._end[i],
                                                         self._flags[i])
        self._set(i, (b + f[BYTES], p + f[PACKETS], min(s, f[START]), max(e, f[END]), fl | f[TCP_FLAGS]))
        extras = f[EXTRAS]
        if extras:
            self._join_extras(i, extras)

    def _join_extras(self, i: int, extras: dict[str, Any]) -> None:
        """A later flow's additional fields into window ``i``'s: a field the window lacks is added,
        one it has is kept. A window's dict may be shared (with its first flow, with other windows:
        see :mod:`flowpipe.decode.sflow_columns`), so it is never changed: a new one replaces it."""
        mine = self._extras[i]
        if mine is None:
            self._extras[i] = extras
        elif not mine.keys() >= extras.keys():
            joined = dict(mine)
            for k, v in extras.items():
                joined.setdefault(k, v)
            self._extras[i] = joined

    def _fit(self) -> None:
        """Room in the columns for every slot the context table has handed out: each column grows by
        a chunk (an empty window in each new slot)."""
        cap = self.contexts.capacity
        while len(self._isopen) < cap:
            n = len(self._isopen)
            chunk = max(1024, n >> 4)
            zeros = array("q", bytes(8 * chunk))
            for c in (self._bytes, self._packets, self._start, self._end, self._flags):
                c.extend(zeros)
            self._next.extend(array("d", bytes(8 * chunk)))
            self._isopen.extend(bytes(chunk))
        if len(self._base) < len(self._isopen):  # (a copy each time: grown by a quarter at least)
            n = max(len(self._isopen), len(self._base) + (len(self._base) >> 2))
            self._base, self._extras = _grown(self._base, n), _grown(self._extras, n)

    # ---- emission

    def _emit(self, at: Any) -> FlowColumns:
        """The windows of the contexts in slots ``at`` (an int64 array) as flow columns (no object per flow)."""
        if not len(at):
            return FlowColumns.empty()
        B, P, S, E, F = (_view(c)[at] for c in (self._bytes, self._packets, self._start, self._end, self._flags))
        big = self._big
        slots = at.tolist() if big else []
        if big and any(i in big for i in slots):  # values past int64: these columns as lists of ints
            B, P, S, E, F = (c.tolist() for c in (B, P, S, E, F))
            for k, i in enumerate(slots):
                held = big.get(i)
                if held is not None:
                    B[k], P[k], S[k], E[k], F[k] = held
        return FlowColumns(self.keys.columns_at(self.contexts, at), self._base[at].tolist(), S, E, B, P, F,
                           self._extras[at].tolist())

    def _order(self) -> Any:
        """The slots of the contexts held, oldest first (an int64 array)."""
        return np.frombuffer(self.contexts.order(), np.int64)

    def flush(self, now: float) -> FlowColumns:
        """Emit the contexts that are due at ``now`` and drop the expired ones."""
        out, expired = self._visit(now, self._order())
        self._expire(expired)
        self.keys.sweep()
        return out

    def flush_parts(self, now: float, size: int) -> Iterator[FlowColumns]:
        """:meth:`flush` ``size`` contexts at a time, for a caller that lets other work run in between.

        The contexts are those held when the first part is asked for, in the same order; flows
        added between parts land in the windows of the contexts not visited yet, as if they had
        come just before the flush. Contexts made in between are left for the next flush (a slot
        freed by an earlier part and taken by a new context is in no later part).
        """
        order = self._order()
        for a in range(0, len(order), size):
            out, expired = self._visit(now, order[a:a + size])
            self._expire(expired)
            yield out
        self.keys.sweep()

    def _visit(self, now: float, at: Any) -> tuple[FlowColumns, Any]:
        """Emit the open windows due at ``now`` among the contexts in slots ``at``, move their next
        emission on by the interval (and that of due empty windows), and give the slots of the
        contexts whose empty window outlived the TTL; with numpy over the slot columns."""
        if not len(at):
            return FlowColumns.empty(), at
        base, extras = self._base, self._extras
        isopen = _bview(self._isopen)
        is_open = isopen[at] != 0
        nxt = _dview(self._next)
        due = nxt[at] <= now
        closed = np.flatnonzero(~is_open)
        gone = np.zeros(len(at), dtype=bool)
        if len(closed):  # an empty window holds the time of its last emission in ``extras``
            last = extras[at[closed]].astype(np.float64)
            gone[closed[last + self.ttl < now]] = True
        nxt[at[due & ~gone]] += self.interval
        emitted = at[is_open & due]
        out = self._emit(emitted)
        self._back_in_columns(emitted)
        base[emitted] = None
        isopen[emitted] = 0
        extras[emitted] = now  # the last emission (one object for all emitted now)
        return out, at[gone]

    def _expire(self, slots: Any) -> None:
        """The contexts in these slots are gone (their windows are empty)."""
        if not len(slots):
            return
        self.keys.release_many(self.contexts.keys(slots))
        self.contexts.remove(slots)
        self._back_in_columns(slots)
        self._extras[slots] = None

    def drain(self) -> FlowColumns:
        """Emit every context that holds a flow, due or not (shutdown)."""
        return FlowColumns.join(list(self.drain_parts(len(self.contexts) or 1)))

    def drain_parts(self, size: int) -> Iterator[FlowColumns]:
        """:meth:`drain` ``size`` contexts at a time (a million contexts emitted at once would hold all
        their rendered flows in memory together); nothing is held once the last part is out."""
        order = self._order()
        held = order[_bview(self._isopen)[order] != 0]  # (an array: a million slots as ints were 36 MB)
        for a in range(0, len(held), size):
            yield self._emit(held[a:a + size])
        self.contexts.clear()
        self.keys.clear()
        self._clear_columns()

    def context_keys(self) -> Iterator[tuple]:
        """The contexts' keys as (namespace, exporter, src ip, dst ip, src port, dst port, protocol,
        tos, input interface), in the order they were made."""
        return zip(*self.keys.columns_of(self.contexts.keys(self._order())), strict=True)

    def rotate_rollup(self) -> None:
        if self.rollup is not None:
            self.rollup.rotate()
