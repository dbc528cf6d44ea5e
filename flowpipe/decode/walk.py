"""Walks over a datagram's parts, for the service's columnar path: where each part is, nothing decoded.

- :func:`data_sets`: a NetFlow v9 / IPFIX datagram made only of data sets, as its header values and
  the sets' spans (None for any other datagram: the template decoder's full path then reads it);
- :func:`flow_samples`: the samples of an sFlow v5 datagram, as the spans of its flow samples, their
  sampling rates' summary, and in order what else it holds (counter samples, skip reasons).

Both are pure (bytes in, positions out). ``flowpipe/decode/_walk.c`` has them compiled, with the same
results (the tests hold the two to it); this module's are used where it was not built (``COMPILED``).
It also has ``plain_samples`` (an sFlow datagram's header and :func:`flow_samples` in one step; None
when not built: :func:`flowpipe.decode.sflow.py_plain_samples`), ``read_samples``, which reads sFlow
flow samples into the columns :mod:`flowpipe.decode.sflow_columns` otherwise reads with numpy (None
when not built), ``tuple_columns``, which reads flow tuples into columns for
:mod:`flowpipe.decode.rows`, ``column_tuples``, the other way (the kept fields of new contexts, from columns), and
``compact``, which packs the fixed-length fields of variable-length records for the columnar path.
"""
from __future__ import annotations

import operator
import struct
from array import array
from collections.abc import Callable
from itertools import repeat
from typing import Any

__all__ = ["COMPILED", "column_tuples", "compact", "data_sets", "flow_samples", "py_column_tuples", "py_compact",
           "py_data_sets", "py_flow_samples", "py_tuple_columns", "tuple_columns"]

_V9 = struct.Struct("!HHIIII")   # version, count, sysUptime ms, unix secs, sequence, source id
_V10 = struct.Struct("!HHIII")   # version, length, export time, sequence, observation domain
_HH = struct.Struct("!HH")
_II = struct.Struct(">II")
_U32 = struct.Struct(">I")
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_VARLEN = 65535

DataSets = tuple[int, int, int, int, int, list[int]]
# Counter sample (format, start, end) or skip reason, in the order the datagram has them.
Event = tuple[int, int, int] | str
FlowSamples = tuple[bytes, int, int, list[Event] | None]


def py_data_sets(data: bytes) -> DataSets | None:
    """(version, secs, uptime, sequence, domain, [set id, body start, body end, ...]) of a v9 or IPFIX
    datagram that is only data sets (ids >= 256), well formed and filling it exactly (the IPFIX
    length is the datagram's); None otherwise. v9 ``uptime`` is the header's sysUptime, IPFIX's 0."""
    n = len(data)
    if n < 20 or data[0]:
        return None
    if data[1] == 9:
        _, _, uptime, secs, seq, did = _V9.unpack_from(data)
        off = 20
    elif data[1] == 10:
        _, length, secs, seq, did = _V10.unpack_from(data)
        if length != n:
            return None
        uptime, off = 0, 16
    else:
        return None
    sets: list[int] = []
    hh = _HH.unpack_from
    while off < n:
        if n - off < 4:
            return None
        sid, ln = hh(data, off)
        if sid < 256 or ln < 4 or off + ln > n:
            return None
        sets += (sid, off + 4, off + ln)
        off += ln
    return (data[1], secs, uptime, seq, did, sets) if sets else None


def py_flow_samples(data: bytes, off: int, nsamples: int) -> FlowSamples:
    """The ``nsamples`` samples of an sFlow v5 datagram from ``off``: (the flow samples (formats 1 and 3,
    header long enough) as native int64 (start, end, expanded) triplets; the last one's sampling rate;
    how many have rate 0; the rest in order, or None: counter samples (formats 2 and 4) as (format,
    start, end), and the skip reasons ``sample_truncated`` (ends the walk), ``sample_enterprise``,
    ``sample_short``, ``discard_sample``, ``sample_unknown_format``)."""
    if off < 0 or nsamples < 0:
        raise ValueError(f"offset {off} and sample count {nsamples} must not be negative")
    n = len(data)
    spans = array("q")
    rate = unrated = 0
    rest: list[Event] | None = None
    for _ in range(nsamples):
        if n - off < 8:
            rest = (rest or []) + ["sample_truncated"]
            break
        fmt, length = _II.unpack_from(data, off)
        start = off + 8
        end = start + length
        if end > n:
            rest = (rest or []) + ["sample_truncated"]
            break
        off = end
        why: Event | None = None
        if fmt >> 12:
            why = "sample_enterprise"
        elif fmt == 1 or fmt == 3:
            if length < (44 if fmt == 3 else 32):
                why = "sample_short"
            else:
                spans.extend((start, end, fmt == 3))
                rate = _U32.unpack_from(data, start + (12 if fmt == 3 else 8))[0]
                if not rate:
                    unrated += 1
        elif fmt == 2 or fmt == 4:
            why = (fmt, start, end)
        elif fmt == 5:
            why = "discard_sample"
        else:
            why = "sample_unknown_format"
        if why is not None:
            if rest is None:
                rest = []
            rest.append(why)
    return spans.tobytes(), rate, unrated, rest


def py_compact(body: bytes, lens: tuple[int, ...], min_size: int, max_records: int) -> tuple[bytes, int, bool]:
    """The records of a data set of a template with variable-length fields (length ``VARLEN``:
    RFC 7011 section 7, a length byte, 255 then two bytes) as records of their fixed-length fields
    only, end to end: the first ``max_records``, how many, and whether a record ran past the set
    (it and the rest are not read), past ``max_records`` or not; the walk of
    :func:`flowpipe.decode.elements.split_varlen`."""
    if min_size < 1 or max_records < 0 or len(lens) > 4096 or not all(0 <= ln <= _VARLEN for ln in lens):
        raise ValueError("compact: min_size >= 1, max_records >= 0, at most 4096 field lengths of 0..65535")
    out = bytearray()
    n, o, count = len(body), 0, 0
    while n - o >= min_size:
        mark, keep, start = len(out), count < max_records, o
        for ln in lens:
            variable = ln == _VARLEN
            if variable:  # its length first
                if o >= n or body[o] == 255 and o + 3 > n:
                    break
                ln, o = (body[o], o + 1) if body[o] != 255 else (body[o + 1] << 8 | body[o + 2], o + 3)
            if o + ln > n:
                break
            if keep and not variable:
                out += body[o:o + ln]
            o += ln
        else:  # the whole record read
            count += keep
            if o == start:
                break  # (a record of no bytes at all: no variable-length field; not this walk's)
            continue
        del out[mark:]  # it ran past the set: not read, nor the rest
        return bytes(out), count, True
    return bytes(out), count, False


def py_tuple_columns(flows: list[tuple] | tuple[tuple, ...], ints: tuple[tuple[int, int, int], ...],
                     lengths: tuple[int, ...]) -> tuple[bytes, bytes]:
    """Flow tuples read into int64 columns, column after column (``len(ints) + len(lengths)`` of
    ``len(flows)`` each), and an ok byte per flow. ``ints``: (slot, lo, hi) each: the integer at that
    slot (an int, or anything with ``__index__``), 0 where it is not one or is outside [lo, hi]
    or int64, and then that flow's ok is 0; ``lengths``: slots whose bytes' length is read (-1: not bytes)."""
    flows = tuple(flows)  # (read as they were when called, whatever an __index__ does to the list)
    n, k = len(flows), len(ints)
    cols = array("q", bytes(8 * (k + len(lengths)) * n))
    ok = bytearray(b"\x01" * n)
    for i, f in enumerate(flows):
        for j, (slot, lo, hi) in enumerate(ints):
            try:
                x = operator.index(f[slot])
            except TypeError:
                x = None
            if x is None or not lo <= x <= hi or not _I64_MIN <= x <= _I64_MAX:
                ok[i] = 0
                x = 0
            cols[j * n + i] = x
        for j, slot in enumerate(lengths, k):
            v = f[slot]
            cols[j * n + i] = len(v) if isinstance(v, bytes) else -1
    return cols.tobytes(), bytes(ok)


def py_column_tuples(columns: tuple[Any, ...], n: int) -> list[tuple]:
    """``n`` tuples, row ``i``'s holding for each column in order: a list's item ``i``; a 1-tuple's one
    item (the same object in every row); a buffer of ``n`` native 64-bit integers' item ``i`` (equal
    neighbours in a column are one int object)."""
    if n < 0:
        raise ValueError("column_tuples: n must not be negative")
    its: list[Any] = []
    for c in columns:
        if isinstance(c, list):
            if len(c) != n:
                raise ValueError("column_tuples: a list column is not n long")
            its.append(c)
        elif isinstance(c, tuple) and len(c) == 1:
            its.append(repeat(c[0], n))
        else:
            m = memoryview(c)
            if m.format.lstrip("=@<") not in ("q", "l", "Q", "L") or m.itemsize != 8 or m.nbytes != 8 * n \
                    or not m.c_contiguous or m.ndim > 1:
                raise ValueError("column_tuples: an integer column is not n native 64-bit integers")
            ints: list[int] = m.cast("B").cast(m.format.lstrip("=@<")).tolist() if n else []  # type: ignore[call-overload]
            its.append(list(map(_same_int(), ints)))
    return list(zip(*its, strict=True)) if its else [()] * n


def _same_int() -> Callable[[int], int]:
    """An int's equal predecessor in the column, as :func:`py_column_tuples` shares them."""
    last: list[int] = []

    def same(x: int) -> int:
        if last and last[0] == x:
            return last[0]
        last[:] = [x]
        return x

    return same


data_sets: Any = py_data_sets
flow_samples: Any = py_flow_samples
plain_samples: Any = None  # (flowpipe.decode.sflow.py_plain_samples where not built)
read_samples: Any = None  # sFlow flow samples into columns: flowpipe.decode.sflow_columns reads them with numpy
tuple_columns: Any = py_tuple_columns
column_tuples: Any = py_column_tuples
compact: Any = py_compact
SAMPLE_COLUMNS = 0
try:
    from flowpipe.decode import _walk  # type: ignore[attr-defined]
except ImportError:  # not built (no C compiler where it was installed): the same results, in Python
    _walk = None
else:
    data_sets, flow_samples, read_samples = _walk.data_sets, _walk.flow_samples, _walk.read_samples
    plain_samples = _walk.plain_samples
    tuple_columns, column_tuples, compact = _walk.tuple_columns, _walk.column_tuples, _walk.compact
    SAMPLE_COLUMNS = _walk.SAMPLE_COLUMNS
COMPILED = _walk is not None  # which implementation runs (the tests read it)
