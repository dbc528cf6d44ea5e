"""Columnar decoding of fixed-length NetFlow v9 / IPFIX data sets (the service's fast path).

In the service, a data set whose template has a :class:`VectorPlan` is not turned into flow
tuples by the decoder: it travels as a :class:`Chunk` (the set's records plus what decoding them
needs) to the accumulator, which reads the chunks of a batch together with numpy
(:class:`Columns`): the context key, bytes, packets, start, end and TCP flags of every record,
and the kept and additional fields of the records that open a window. A record numpy cannot
take (a v9 time that wrapped, a counter near 64 bits) is decoded into its flow tuple by the
template's own record decoder (:meth:`Columns.row`), exactly as without chunks.

A template has a plan when every one of those values comes straight from one field of the record
(or is absent): fixed-length fields (a template with variable-length ones too, if it has no
additional fields: its records' fixed fields are packed first, :class:`PackedChunk`), addresses
of 4 or 16 bytes (an IPv4 or an IPv6 field record by record: a plan per pair of lengths,
:class:`Picks`), integers of 1, 2, 4 or 8 bytes, times in seconds, milliseconds, NTP,
microseconds before the export, v9 sysUptime or IPFIX sysUpTime milliseconds; a sampling rate
from the domain, a sampler id and/or one rate field in the record; additional fields (mapping,
passthrough) each from one fixed-length field; no in-band exporter identity, no mapping over
those slots.
"""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from flowpipe.decode import walk
from flowpipe.flow import (
    BYTES,
    DST_IP,
    END,
    EXPORTER,
    EXTRAS,
    KEPT,
    KEY,
    KEY_WIDTH,
    MERGED,
    NAMESPACE,
    NEXT_HOP,
    PACKETS,
    SAMPLING_RATE,
    SRC_IP,
    START,
    TCP_FLAGS,
    TYPE,
    kept_fields,
)

# Flow slots (see flowpipe.flow) the fast path reads: the context key's record fields ...
KEY_SLOTS = tuple(i for i in KEY if i not in (NAMESPACE, EXPORTER))
# ... and what merging adds up.
BYTES_SLOT, PACKETS_SLOT, START_SLOT, END_SLOT, FLAGS_SLOT = BYTES, PACKETS, START, END, TCP_FLAGS
if MERGED != {"sum": (BYTES, PACKETS), "min": (START,), "max": (END,), "or": (TCP_FLAGS,)}:  # (the accumulator's)
    raise ImportError("flowpipe.decode.columns: flowpipe.flow.SCHEMA's merge rules are not the ones columns carry")
_INT_FORMATS = {1: "u1", 2: ">u2", 4: ">u4", 8: ">u8"}
# Widest field a key slot may come from: its value must fit the compact key (flowpipe.aggregate.keys),
# or a longer field's value would be cut where the tuple path keys it exactly.
_KEY_WIDTH = KEY_WIDTH
NTP_EPOCH = 2208988800  # 1900-01-01 to 1970-01-01, in seconds
MAX_PACKED_FIELDS = 4096  # fields of a variable-length template whose records are packed (walk.compact)
COUNTER_MAX = 1 << 48  # bytes/packets of one record merged by numpy (sums stay far from 2**63)
_WIDE_MAX = 1 << 62    # 8-byte fields past this take the tuple path
NOTHING_SKIPPED: list[str] = []  # shared by chunks whose decoding skips nothing (never appended to)


# The kept fields (flowpipe.flow.kept_fields) a plan may read too: direction, ether type, MACs,
# masks, output interface, next hop (type and sampling rate come from the decoder and the chunk).
KEPT_SLOTS = KEPT[2:]
if KEPT[:2] != (TYPE, SAMPLING_RATE):  # (Columns.kept_at makes a kept tuple as type, rate, then these)
    raise ImportError("flowpipe.decode.columns: flowpipe.flow.SCHEMA's kept fields no longer start with type, rate")
_KEPT_DEFAULT: dict[int, Any] = {NEXT_HOP: b""}

Intern = Callable[[tuple, tuple], tuple]  # setdefault of a cache of equal tuples
_MIX = np.uint64(0x9E3779B97F4A7C15)
PROBE = 128  # rows looked at first by unique_rows


def objects(values: list[Any]) -> Any:
    """``values`` as a numpy object array, each value one element as it is (tuples too)."""
    return np.fromiter(values, dtype=object, count=len(values))


def _words(columns: list[Any]) -> list[Any]:
    """The columns as uint64 words (a ``V<n>`` column over n > 8 bytes as several)."""
    words: list[Any] = []
    for c in columns:
        if c.dtype.kind not in "biuV":
            raise TypeError(f"unique_rows takes integer or V<n> columns, not {c.dtype}")
        w = c.dtype.itemsize
        if c.dtype.kind != "V":
            words.append(c.astype(np.uint64))
        elif w in (1, 2, 4, 8):
            words.append(c.view(f"u{w}").astype(np.uint64))
        else:
            b = np.zeros((len(c), -(-w // 8) * 8), dtype=np.uint8)
            b[:, :w] = np.ascontiguousarray(c).view(np.uint8).reshape(len(c), w)
            words.extend(b.view(np.uint64).T)
    return words


def _hashes(words: list[Any], n: int) -> Any:
    h = np.zeros(n, dtype=np.uint64)
    for w in words:
        h = (h ^ w) * _MIX
        h ^= h >> np.uint64(29)
    return h


def mostly_distinct(columns: list[Any]) -> bool:
    """The first :data:`PROBE` rows of these columns (as :func:`unique_rows` takes them) are mostly
    distinct, when there are more rows than that: :func:`unique_rows` would give None."""
    if len(columns[0]) <= PROBE:
        return False
    return len(np.unique(_hashes(_words([c[:PROBE] for c in columns]), PROBE))) > PROBE // 2


def unique_rows(columns: list[Any]) -> tuple[Any, Any] | None:
    """Which rows of these equal-length numpy columns (integers, or ``V<n>`` bytes) are alike: the
    position of one row of each distinct one and each row's index among those; None when two
    distinct rows share a hash (rare), or when the first :data:`PROBE` rows are mostly distinct (the
    caller then takes every row as it is; :func:`mostly_distinct` tells that first, for less)."""
    if mostly_distinct(columns):
        return None  # mostly distinct (MACs per flow, say): sorting them all would only cost
    words = _words(columns)
    h = _hashes(words, len(columns[0]))
    if not len(h):
        return h.astype(np.int64), h.astype(np.int64)
    s = np.sort(h)  # (np.unique with the first rows and the inverse took twice as long)
    which = np.searchsorted(s[np.concatenate(([True], s[1:] != s[:-1]))], h)
    first = np.empty(int(which.max()) + 1, dtype=np.int64)
    first[which] = np.arange(len(h))  # a row of each (the check below makes any of them right)
    for w in words:
        if not np.array_equal(w[first][which], w):
            return None
    return first, which


def per_distinct(columns: list[Any], make: Callable[[Any], list[Any]]) -> Any:
    """``make(rows)`` (one object per row of ``rows``, positions into the equal-length numpy
    ``columns``) for every row, as a numpy object array: made once per distinct row when the rows
    repeat (:func:`unique_rows`), else for every row."""
    n = len(columns[0])
    alike = unique_rows(columns) if n else None
    if alike is None:
        return objects(make(np.arange(n)))
    return objects(make(alike[0]))[alike[1]]


class VectorPlan:
    """Where a template's records keep the fast path's values: a numpy dtype over the record.

    ``kept``: how to read each kept field of a record (slot -> ("const", value) | ("field", name) |
    ("mac", name)), for the flow type ``kind``; None when some kept field is not one plain field,
    and then a new window's kept fields come from the record's flow tuple."""

    __slots__ = ("dtype", "names", "times", "family", "kept", "kind", "rate", "extras")

    def __init__(self, dtype: np.dtype[Any], names: dict[int, str], times: dict[int, str],
                 kept: dict[int, tuple[str, Any]] | None = None, kind: str = "",
                 rate: tuple[str | None, str | None] | None = None,
                 extras: tuple[tuple[str, str, Callable[[bytes], Any] | None], ...] = ()) -> None:
        self.kept, self.kind = kept, kind
        # the additional fields every record has: (name, field name in dtype, converter of its bytes,
        # None for an integer), in the record decoder's order
        self.extras = extras
        # the sampling rate's fields in the record, (rate, sampler id) names in dtype (None: absent);
        # None: every record has its domain's rate
        self.rate = rate
        self.dtype = dtype
        self.names = names  # slot -> field name in dtype (absent slots take the tuple's default)
        # (source, destination) address lengths: records of plans with different ones can share
        # no context and no rollup address pair
        self.family = tuple(dtype.fields[names[s]][0].itemsize if s in names else 0  # type: ignore[index]
                            for s in (SRC_IP, DST_IP))
        # START_SLOT / END_SLOT -> "s" | "ms" | "up" | "init" | "ntp" | "delta" | "v5" (absent: the export time)
        self.times = times


def plan(fields: Sequence[tuple[int, int, int]], expressions: dict[int, str],
         simple: dict[int, tuple[str, int, str]], kind: str = "",
         rate: tuple[int | None, int | None] = (None, None),
         extras: Sequence[tuple[str, int, str, Callable[[bytes], Any] | None]] = ()) -> VectorPlan | None:
    """The plan of a template's fixed-length fields (a variable-length one has length 0 here: see
    :class:`PackedChunk`), or None when some value is not one field as it is.

    ``expressions``: slot -> the record decoder's final expression (after mapping);
    ``simple``: slot -> (expression, field index, how) for slots filled straight from a field;
    ``kind``: the flow type the records are (their kept fields are read too when they can be);
    ``rate``: the indexes of the fields a record's sampling rate comes from, (rate in the record,
    sampler id), None where absent: the rate is the record's if not 0, else its sampler's, else
    the domain's; ``extras``: the additional fields every record has, (name, field index, "int" |
    "intle" | "bytes", the converter of the bytes), as the record decoder makes them.
    """
    offsets, off = [], 0
    for _, _, ln in fields:
        offsets.append(off)
        off += ln
    names: dict[int, str] = {}
    times: dict[int, str] = {}
    formats: list[str] = []
    offs: list[int] = []
    for slot in KEY_SLOTS + (BYTES_SLOT, PACKETS_SLOT, FLAGS_SLOT, START_SLOT, END_SLOT):
        if slot not in expressions:
            continue
        s = simple.get(slot)
        if s is None or s[0] != expressions[slot]:
            return None
        _, i, how = s
        ln = fields[i][2]
        if how == "raw":
            if ln not in (4, 16):
                return None
            fmt = f"V{ln}"
        elif ln in _INT_FORMATS and ln <= _KEY_WIDTH.get(slot, 8):
            fmt = _INT_FORMATS[ln]
        else:
            return None
        if slot in (START_SLOT, END_SLOT):
            times[slot] = how
        elif how not in ("int", "raw"):
            return None
        names[slot] = f"s{slot}"
        formats.append(fmt)
        offs.append(offsets[i])
    if SRC_IP not in names and DST_IP not in names:
        return None  # no address at all: not worth a plan
    rated: list[str | None] = []
    for name, at, widest in (("r_rate", rate[0], 4), ("r_sampler", rate[1], 8)):
        if at is None:
            rated.append(None)
            continue
        ln = fields[at][2]
        if ln not in _INT_FORMATS or ln > widest:
            return None  # (a rate past 2**32, or an odd width: the record decoder's)
        rated.append(name)
        formats.append(_INT_FORMATS[ln])
        offs.append(offsets[at])
    rate_names = (rated[0], rated[1]) if rated != [None, None] else None
    more: list[tuple[str, str, Callable[[bytes], Any] | None]] = []
    for k, (name, at, how, convert) in enumerate(extras):
        ln = fields[at][2]
        if how == "bytes" and ln > 0:
            fmt = f"V{ln}"
        elif how in ("int", "intle") and ln in _INT_FORMATS:
            fmt = _INT_FORMATS[ln] if how == "int" or ln == 1 else f"<u{ln}"
        else:
            return None
        more.append((name, f"x{k}", convert))
        formats.append(fmt)
        offs.append(offsets[at])
    kept: dict[int, tuple[str, Any]] | None = {}
    extra: list[tuple[str, str, int]] = []  # (name, format, offset) of the kept fields read
    for slot in KEPT_SLOTS:
        e, s = expressions.get(slot), simple.get(slot)
        if e is None:
            kept[slot] = ("const", _KEPT_DEFAULT.get(slot, 0))  # type: ignore[index]
            continue
        if e.isdigit():
            kept[slot] = ("const", int(e))  # type: ignore[index]
            continue
        ln = fields[s[1]][2] if s is not None and s[0] == e else 0
        if s is not None and s[2] == "raw" and ln in (4, 16):
            how, fmt = "field", f"V{ln}"
        elif s is not None and s[2] == "int" and ln in _INT_FORMATS:
            how, fmt = "field", _INT_FORMATS[ln]
        elif s is not None and s[2] == "int" and ln == 6:
            how, fmt = "mac", "V6"
        else:
            kept = None
            break
        kept[slot] = (how, f"k{slot}")  # type: ignore[index]
        extra.append((f"k{slot}", fmt, offsets[s[1]]))  # type: ignore[index]
    if kept is None:
        extra = []
    dtype = np.dtype({"names": list(names.values()) + [r for r in rated if r] + [x[1] for x in more]
                      + [x[0] for x in extra], "formats": formats + [x[1] for x in extra],
                      "offsets": offs + [x[2] for x in extra], "itemsize": off})
    return VectorPlan(dtype, names, times, kept, kind, rate_names, tuple(more))


def sampling_rates(p: VectorPlan, records: Any, domains: list[tuple[dict[int, int], int]], which: Any) -> Any:
    """The sampling rate of each of ``records`` (of ``p.dtype``, ``p.rate`` not None), as the record
    decoder makes it: the record's own when not 0, else its sampler's, else its domain's.
    ``domains``: (sampler id -> rate, rate) of each domain; ``which``: each record's domain."""
    own, sampler = p.rate  # type: ignore[misc]
    # (uint64: an options record may announce any 8-byte rate)
    base = np.fromiter((r for _, r in domains), np.uint64, len(domains))[which]
    if sampler is not None:
        ids = records[sampler].astype(np.uint64)
        if len(domains) == 1:
            u, at = np.unique(ids, return_inverse=True)
            rates = [domains[0][0].get(k, domains[0][1]) for k in u.tolist()]
        elif int(ids.max(initial=0)) < 1 << 32:  # (domain, sampler id) as one word
            u, at = np.unique((which.astype(np.uint64) << np.uint64(32)) | ids, return_inverse=True)
            rates = [domains[k >> 32][0].get(k & 0xFFFFFFFF, domains[k >> 32][1]) for k in u.tolist()]
        else:
            u, at = np.unique(np.stack([which.astype(np.uint64), ids], axis=1), axis=0, return_inverse=True)
            rates = [domains[d][0].get(i, domains[d][1]) for d, i in u.tolist()]
        base = np.array(rates, dtype=np.uint64)[at.ravel()]
    if own is not None:
        mine = records[own].astype(np.uint64)
        base = np.where(mine != 0, mine, base)
    return base


class Chunk:
    """One data set (or v5 datagram) left undecoded: its whole records and what the record decoder
    needs (``init``: IPFIX system init time; None for v5)."""

    __slots__ = ("dec", "body", "count", "exporter", "namespace", "rate", "samplers", "secs", "uptime", "init",
                 "error", "unrated", "skipped", "policy")
    flow_type = ""  # set by chunk kinds whose decoding may skip parts (see skipped)
    tuples = False  # (flowpipe.decode.rows.Rows: flow tuples)
    derived: Any = None  # (flowpipe.decode.derived.VendorChunk: the flows vendor rules make of its records)

    def __init__(self, dec: Any, body: bytes, count: int, exporter: str, namespace: str, rate: int,
                 samplers: dict[int, int], secs: int, uptime: int, init: int | None) -> None:
        self.dec = dec  # flowpipe.decode.elements.RecordDecoder, with a plan
        self.body, self.count = body, count
        self.exporter, self.namespace = exporter, namespace
        self.rate, self.samplers = rate, samplers
        self.secs, self.uptime, self.init = secs, uptime, init
        self.error: BaseException | None = None  # what the record decoder raised (a decoder bug)
        self.unrated = 0 if rate else count  # records with an unknown sampling rate
        if not rate and dec.plan is not None and dec.plan.rate is not None:  # rates in the records
            self.unrated = count - int(np.count_nonzero(self.record_rates(0, count)))
        self.skipped: list[str] = NOTHING_SKIPPED  # parts skipped while decoding records, for metrics (see flow_type)
        self.policy: Any = None  # the listener's [[sampling]] rules and tags for its exporter (decode/policy.py)

    def flow_records(self, dtype: Any) -> Any:
        """Its records as numpy reads them (``dtype``: its plan's), one per flow."""
        return np.frombuffer(self.body, dtype, self.count)

    def record_rates(self, first: int, n: int, domain: int = 0) -> Any:
        """The sampling rate of ``n`` of its records from ``first`` (its plan reads rates in the
        records), as the record decoder makes it with ``domain`` as the domain's rate."""
        p = self.dec.plan
        a = np.frombuffer(self.body, p.dtype, n, first * p.dtype.itemsize)
        return sampling_rates(p, a, [(self.samplers, domain)], np.zeros(n, np.int64))

    def last_record(self) -> int:
        """Which of its records the last flow comes from."""
        return self.count - 1

    def last_rate(self) -> int:
        """The sampling rate of the set's last flow, as the record decoder makes it (for the
        exporter inventory's announced rate)."""
        p = self.dec.plan
        if p is None or p.rate is None or not self.count:  # (every record's: the domain's)
            return int(self.rate)
        return int(self.record_rates(self.last_record(), 1, self.rate)[0])

    def rows(self) -> list[tuple | None]:
        """The records as flow tuples (what the decoder would have made); ``None`` for each when the
        record decoder raised (kept in :attr:`error`): decoding happens outside the decoder stage's
        per-datagram guard, so a decoder bug costs these records, never the accumulator."""
        return self._decode(self.body)

    def _decode(self, body: bytes) -> list[tuple | None]:
        """The records of ``body`` decoded by the record decoder (see :meth:`rows`); those before a
        record that ran past the set, for variable-length ones."""
        try:
            rows: list[tuple | None] = self.dec.decode(body, self.exporter, self.namespace, self.rate,
                                                       self.samplers, self.secs, self.uptime, self.init)
        except RecordOverrun as e:  # (the records before it: the ones packed, see PackedChunk)
            rows = list(e.rows)
        except Exception as e:  # noqa: BLE001 - any decoder bug: the set's records are lost, counted
            self.error = e
            return [None] * self.count
        return rows


class Picks:
    """A fixed-length template whose addresses come from an IPv4 or an IPv6 field record by record
    (the IPv4 one unless it is all zero and the IPv6 one is not): ``where``, the (IPv4, IPv6) field
    offsets of each such address; ``variants``, a record decoder with a plan for each pair of
    address lengths (4 or 16 per address, in ``where``'s order)."""

    __slots__ = ("size", "where", "variants")

    def __init__(self, size: int, where: tuple[tuple[int, int], ...], variants: dict[tuple[int, ...], Any]) -> None:
        self.size, self.where, self.variants = size, where, variants

    def split(self, body: bytes, count: int) -> list[tuple[Any, bytes, int, Any]]:
        """The ``count`` records of ``body`` (packed ones, for a template with variable-length fields)
        as (record decoder, records, how many, their positions among the ``count``: None for all),
        one per pair of address lengths, in order of first appearance (records of different
        lengths share no context and no rollup address pair), each in arrival order."""
        a = np.frombuffer(body, np.uint8, count * self.size).reshape(count, self.size)
        code = np.zeros(count, dtype=np.int64)
        for k, (o4, o6) in enumerate(self.where):
            v6 = ~a[:, o4:o4 + 4].any(axis=1) & a[:, o6:o6 + 16].any(axis=1)
            code |= v6.astype(np.int64) << k
        which, first = np.unique(code, return_index=True)
        n = len(self.where)

        def variant(c: int) -> Any:  # (bit k of the code: address k is IPv6)
            return self.variants[tuple(16 if c >> k & 1 else 4 for k in range(n))]

        if len(which) == 1:
            return [(variant(int(which[0])), body[:count * self.size], count, None)]
        out = []
        for c in which[np.argsort(first)].tolist():
            rows = np.flatnonzero(code == c)
            out.append((variant(c), a[rows].tobytes(), len(rows), rows))
        return out


class RecordOverrun(Exception):
    """A variable-length record ran past its set; ``rows`` are the records decoded before it."""

    def __init__(self, rows: list[tuple]) -> None:
        super().__init__("record overruns its set")
        self.rows = rows


class PackedChunk(Chunk):
    """A data set of a template with variable-length fields: ``body`` holds its records' fixed-length
    fields packed end to end (:func:`flowpipe.decode.walk.compact`, what the plan reads), ``raw`` the
    set as it came (what the record decoder reads, for flow tuples)."""

    __slots__ = ("raw", "at")

    def __init__(self, dec: Any, packed: bytes, raw: bytes, count: int, exporter: str, namespace: str, rate: int,
                 samplers: dict[int, int], secs: int, uptime: int, init: int | None, at: Any = None) -> None:
        super().__init__(dec, packed, count, exporter, namespace, rate, samplers, secs, uptime, init)
        self.raw = raw
        self.at = at  # the positions of its records among the set's (None: the first ``count``; see Picks)

    def rows(self) -> list[tuple | None]:
        rows = self._decode(self.raw)
        if self.error is not None:
            return rows
        return rows[:self.count] if self.at is None else [rows[i] for i in self.at.tolist()]


def flows_of(chunks: list[Chunk]) -> list[tuple]:
    """The records of data set chunks as flow tuples, in order (for a datagram whose later sets must
    be flow tuples); raises what a record decoder raised, for the decoder stage's per-datagram guard."""
    flows: list[tuple] = []
    for c in chunks:
        rows = c.rows()
        if c.error is not None:
            raise c.error
        flows += rows  # type: ignore[arg-type]
    return flows


class Columns:
    """The records of chunks of one template (any exporters), as columns.

    ``parts``: the context key's record fields (:data:`KEY_SLOTS`), numpy arrays (addresses as
    ``V4``/``V16``) or None when absent (empty address, 0); ``bytes``, ``packets``, ``start``,
    ``end``, ``flags``: int64 arrays; ``ok``: False where the record must take the tuple path.
    """

    __slots__ = ("chunks", "counts", "starts", "n", "parts", "bytes", "packets", "start", "end", "flags", "ok",
                 "_rows", "_plan", "_records")

    def __init__(self, chunks: list[Chunk]) -> None:
        first = chunks[0]
        p: VectorPlan = first.dec.plan
        vendor = first.derived is not None  # (a decoder's chunks are all of one kind)
        if vendor:  # a record per flow (see flowpipe.decode.derived)
            got = [c.flow_records(p.dtype) for c in chunks]
            a = got[0] if len(got) == 1 else np.concatenate(got)
        else:
            a = np.frombuffer(first.body if len(chunks) == 1 else b"".join([c.body for c in chunks]), dtype=p.dtype)
        self._plan, self._records = p, a
        n = len(a)
        self.counts = counts = [c.count for c in chunks]
        self.chunks = chunks
        self.starts = [0]
        for c in counts[:-1]:
            self.starts.append(self.starts[-1] + c)
        self.n = n
        self._rows: dict[int, list[tuple | None]] = {}
        names = p.names
        ok = np.ones(n, dtype=bool)

        def ints(slot: int) -> Any:
            name = names.get(slot)
            if name is None:
                return np.zeros(n, dtype=np.int64)
            v = a[name]
            if v.dtype.itemsize == 8:
                ok[v >= _WIDE_MAX] = False
            return v.astype(np.int64)

        self.parts = [a[names[slot]] if slot in names else None for slot in KEY_SLOTS]
        if vendor:  # the counters and flags the rules worked out
            b, pk, fl = (np.concatenate([getattr(c.derived, k) for c in chunks]) for k in ("bytes", "packets", "flags"))
            ok &= (b < COUNTER_MAX) & (pk < COUNTER_MAX) & (fl < _WIDE_MAX)
            self.bytes, self.packets, self.flags = b.astype(np.int64), pk.astype(np.int64), fl.astype(np.int64)
        else:
            self.bytes, self.packets, self.flags = ints(BYTES_SLOT), ints(PACKETS_SLOT), ints(FLAGS_SLOT)
            ok &= (self.bytes < COUNTER_MAX) & (self.packets < COUNTER_MAX)
        made: dict[str, Any] = {}

        def each(name: str) -> Any:
            """A chunk value (``secs``, ``uptime``) for each of its records (made once)."""
            got = made.get(name)
            if got is None:
                got = made[name] = np.repeat(np.array([getattr(c, name) for c in chunks], dtype=np.int64), counts)
            return got

        times = []
        for slot in (START_SLOT, END_SLOT):
            how = p.times.get(slot)
            if how is None:
                times.append(each("secs"))
                continue
            if how == "ntp":  # 64-bit NTP time (seconds since 1900 in the high word); 0: none
                w = a[names[slot]].astype(np.uint64)
                times.append(np.where(w != 0, (w >> np.uint64(32)).astype(np.int64) - NTP_EPOCH, 0))
                continue
            v = ints(slot)
            if how == "delta":  # microseconds before the export
                times.append(each("secs") - v // 1_000_000)
                continue
            if how == "s":
                times.append(v)
            elif how == "ms":
                times.append(v // 1000)
            elif how == "up":  # v9 sysUptime ms; a record after its header (wrap, skew) takes the tuple path
                up = each("uptime")
                ok &= up >= v
                times.append(each("secs") - (up - v) // 1000)
            elif how == "init":  # IPFIX sysUpTime ms from systemInitTimeMilliseconds; without it, the export time
                init = np.repeat(np.array([-1 if c.init is None or c.init >= _WIDE_MAX else c.init for c in chunks],
                                          dtype=np.int64), counts)
                ok &= np.repeat(np.array([c.init is None or c.init < _WIDE_MAX for c in chunks]), counts)
                times.append(np.where(init >= 0, (init + v) // 1000, each("secs")))
            else:  # "v5": secs - (uptime - v) / 1000, divided toward zero (the Agent's); before a wrap: tuple path
                up = each("uptime")
                ok &= v <= up + 0x7FFFFFFF
                d = up - v
                times.append(each("secs") - np.sign(d) * (np.abs(d) // 1000))
        self.start, self.end = times
        self.ok = ok

    def rows(self) -> list[tuple | None]:
        """Every record as a flow tuple (cheaper per record than :meth:`row` when most are needed);
        None for the records of a chunk its decoder failed on."""
        out: list[tuple | None] = []
        cache = self._rows
        for c in range(len(self.chunks)):
            rows = cache.get(c)
            if rows is None:
                rows = cache[c] = self.chunks[c].rows()
            out += rows
        return out

    def owner_ids(self, owner: Any) -> Any:
        """The owner id (``owner(namespace, exporter)``) of each record."""
        ids = np.fromiter((owner(c.namespace, c.exporter) for c in self.chunks), np.int64, len(self.chunks))
        return np.repeat(ids, self.counts)

    def kept_at(self, positions: Any, intern: Intern | None = None) -> tuple[Any, Any]:
        """The kept fields (:data:`flowpipe.flow.kept_fields`) of the records at ``positions`` (a numpy
        object array) and their additional fields (None: no record has any, as in chunks): read from
        the records when the plan can (see :class:`VectorPlan`), else from their flow tuples (None
        for one whose chunk could not be decoded). Equal kept fields are one tuple, passed through
        ``intern`` (``setdefault`` of a cache) when given, unless the batch's are mostly distinct
        (see :func:`unique_rows`)."""
        how = self._plan.kept
        if how is None:
            rows = self.rows_at(positions)
            made = [None if f is None else kept_fields(f) for f in rows]
            if intern is not None:
                made = [None if k is None else intern(k, k) for k in made]
            more = objects([None if f is None else f[EXTRAS] for f in rows]) if self._plan.extras else None
            return objects(made), more
        at = np.asarray(positions, dtype=np.int64)
        more = self._extras_of(at) if self._plan.extras else None
        rates = self._rates_at(at)
        a = {v: self._records[v][at] for kind, v in how.values() if kind != "const"}  # (field by field: faster)
        alike = unique_rows([rates, *a.values()])
        if alike is not None:  # a tuple per distinct kept fields (a batch holds few), not per record
            a = {v: c[alike[0]] for v, c in a.items()}
            rates = rates[alike[0]]
        u = len(rates)
        values: list[Any] = [(self._plan.kind,), rates.astype(np.uint64)]  # (walk.column_tuples' columns)
        for slot in KEPT_SLOTS:
            kind, v = how[slot]
            if kind == "const":
                values.append((v,))
            elif kind == "field":
                c = a[v]
                values.append(c.astype(np.int64 if c.dtype.kind == "i" else np.uint64) if c.dtype.kind in "iu"
                              else c.tolist())
            else:  # a 6-byte MAC as its 48-bit int
                wide = np.zeros((u, 8), dtype=np.uint8)
                wide[:, 2:] = np.ascontiguousarray(a[v]).view(np.uint8).reshape(u, 6)
                values.append(wide.view(">u8").ravel().astype(np.uint64))
        kept: list[Any] = walk.column_tuples(tuple(values), u)
        if alike is None:  # (mostly distinct: nothing to share)
            return objects(kept), more
        if intern is not None:
            kept = list(map(intern, kept, kept))  # type: ignore[arg-type]
        return objects(kept)[alike[1]], more

    def _extras_of(self, at: Any) -> Any:
        """The additional fields of the records at ``at`` (an int64 array), as the record decoder
        makes them; records with equal values share one dict (never changed: see the accumulator)."""
        spec = self._plan.extras
        cols = [self._records[f][at] for _, f, _ in spec]
        names = [name for name, _, _ in spec]

        def make(rows: Any) -> list[Any]:
            values = []
            for (_, _, convert), c in zip(spec, cols, strict=True):
                got = c[rows].tolist()
                values.append(got if convert is None else list(map(convert, got)))
            return [dict(zip(names, v, strict=True)) for v in zip(*values, strict=True)]

        return per_distinct(cols, make) if len(at) else objects([])

    def rates(self) -> Any:
        """The sampling rate of every record (uint64; of those ``ok``), as its record decoder makes it."""
        return self._rates_at(np.arange(self.n))

    def _rates_at(self, at: Any) -> Any:
        """The sampling rate of the records at ``at`` (an int64 array)."""
        chunks = self.chunks
        if self._plan.rate is None:
            return np.repeat(np.fromiter((c.rate for c in chunks), np.uint64, len(chunks)), self.counts)[at]
        index: dict[tuple[int, int], int] = {}  # a domain's chunks share its samplers (a new dict once changed)
        domains: list[tuple[dict[int, int], int]] = []
        ids = []
        for c in chunks:
            k = index.setdefault((id(c.samplers), c.rate), len(domains))
            if k == len(domains):
                domains.append((c.samplers, c.rate))
            ids.append(k)
        which = np.repeat(np.array(ids, dtype=np.int64), self.counts)[at]
        return sampling_rates(self._plan, self._records[at], domains, which)

    def extra_bits(self) -> tuple[Any, tuple[tuple[str, ...], ...]] | None:
        """Which additional fields each record has (see SampleColumns.extra_bits): all of its
        template's, or none; None: no record has."""
        if not self._plan.extras:
            return None
        return np.ones(self.n, dtype=np.int64), (tuple(name for name, _, _ in self._plan.extras),)

    def extras_at(self, positions: Any) -> list[dict[str, Any] | None]:
        if not self._plan.extras:
            return [None] * len(positions)
        # (what ``ok`` guards, counters and times, is not where additional fields come from)
        extras: list[dict[str, Any] | None] = self._extras_of(np.asarray(positions, dtype=np.int64)).tolist()
        return extras

    def failed(self) -> list[Chunk]:
        """The chunks whose record decoder raised so far."""
        return [self.chunks[c] for c in self._rows if self.chunks[c].error is not None]

    def rows_at(self, positions: Any) -> list[tuple | None]:
        """:meth:`row` of each of ``positions`` (decoding every chunk at once when they are many)."""
        at = positions.tolist() if hasattr(positions, "tolist") else positions
        if len(at) > self.n // 4:
            rows = self.rows()
            return [rows[p] for p in at]
        return list(map(self.row, at))

    def failed_positions(self) -> Any:
        """A bool per record: its chunk's record decoder raised (so far)."""
        bad = np.zeros(self.n, dtype=bool)
        for c in self._rows:
            if self.chunks[c].error is not None:
                bad[self.starts[c]:self.starts[c] + self.counts[c]] = True
        return bad

    def row(self, p: int) -> tuple | None:
        """The flow tuple of record ``p`` (decoded by its template's record decoder), None when
        that failed."""
        c = bisect_right(self.starts, p) - 1
        rows = self._rows.get(c)
        if rows is None:
            rows = self._rows[c] = self.chunks[c].rows()
        return rows[p - self.starts[c]]


def group(chunks: list[Any], exact: bool = False) -> tuple[list[Any], list[Any]]:
    """The chunks as columns (:class:`Columns`, one per template decoder, shared by the exporters
    whose templates have the same layout; sFlow's per address family), and, in order, those to take
    as flow tuples: flow tuples (:class:`flowpipe.decode.rows.Rows`), and the chunks of the
    exporters that must not be grouped: those with chunks of two layouts of the same address
    family, or with flow tuples too (grouping would aggregate one exporter's records out of order
    where they can meet). ``exact``: two layouts of any address families, too (when the batch may
    fill the context table, which flows it refuses depends on that order; an sFlow agent's samples
    are still read per address family)."""
    groups: dict[Any, list[Any]] = {}
    layouts: dict[tuple[str, Any], Any] = {}
    tupled: set[str] = set()  # exporters with flow tuples
    mixed: set[str] = set()
    for c in chunks:
        if c.tuples:
            tupled.add(c.exporter)
            continue
        k: Any = id(c.dec) if c.policy is None else (id(c.dec), id(c.policy))
        g = groups.get(k)
        if g is None:
            groups[k] = [c]
        else:
            g.append(c)
        p = c.dec.plan
        family = None if exact or p is None else p.family  # (sFlow's: one decoder, in order within it)
        if (exact or p is not None) and layouts.setdefault((c.exporter, family), k) != k:
            mixed.add(c.exporter)
    if not mixed and not tupled:
        return [cols for g in groups.values() for cols in _columns(g)], []
    mixed |= tupled
    ordered = [c for c in chunks if c.exporter in mixed]
    rest = [g for g in ([c for c in g if c.exporter not in mixed] for g in groups.values()) if g]
    return [cols for g in rest for cols in _columns(g)], ordered


def _columns(chunks: list[Chunk]) -> list[Any]:
    """Chunks of one decoder (and policy) as columns: one :class:`Columns` for a fixed record layout
    (a plan), else what the decoder makes of them (sFlow samples: one per address family); with
    their listener's policy applied (:mod:`flowpipe.decode.policy`)."""
    dec, policy = chunks[0].dec, chunks[0].policy
    got: list[Any] = [Columns(chunks)] if dec.plan is not None else dec.columns(chunks)
    if policy is None:
        return got
    from flowpipe.decode.policy import Policed  # noqa: PLC0415 - (it reads this module)
    return [Policed(c, policy) for c in got]
