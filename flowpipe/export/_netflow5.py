"""NetFlow v5 encoding: packets of records laid out as :class:`~flowpipe.export.DefaultRecord`.

A v5 packet is a 24-byte header and up to 30 fixed 48-byte records. ``flow_sequence`` counts the
flows sent before the packet; the engine type/id pair identifies the exporter's flow cache.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain
from typing import Any

from flowpipe.export._default import DEFAULT_TEMPLATE
from flowpipe.export._errors import ExportError

MAX_RECORDS = 30
V5_HEADER = struct.Struct(">HHIIIIBBH")
_RECORD = "4s4s4sHHIIIIHHxBBBHHBBxx"
RECORD_LENGTH = struct.calcsize(">" + _RECORD)


#: The v5 record as a template (the default template: field types in DefaultRecord order, v5's lengths).
V5_TEMPLATE = DEFAULT_TEMPLATE


@lru_cache(maxsize=64)
def _batch(n: int) -> struct.Struct:
    return struct.Struct(">" + _RECORD * n)


def v5_header(count: int, sys_uptime_ms: int, unix_secs: int, sequence: int, *, unix_nsecs: int = 0,
              engine_type: int = 0, engine_id: int = 0, sampling_interval: int = 0, sampling_mode: int = 0) -> bytes:
    """The 24-byte v5 header (``sequence`` = flows sent before this packet)."""
    if not 1 <= count <= MAX_RECORDS:
        raise ExportError(f"a NetFlow v5 packet carries 1..{MAX_RECORDS} records, not {count}")
    if not 0 <= sampling_interval < 1 << 14 or not 0 <= sampling_mode < 4:
        raise ExportError(f"v5 sampling interval {sampling_interval} / mode {sampling_mode} out of range")
    return V5_HEADER.pack(5, count, sys_uptime_ms & 0xFFFFFFFF, unix_secs & 0xFFFFFFFF, unix_nsecs,
                          sequence & 0xFFFFFFFF, engine_type & 0xFF, engine_id & 0xFF,
                          sampling_mode << 14 | sampling_interval)


def pack_records(records: Sequence[Any]) -> bytes:
    """Records laid out as :class:`DefaultRecord`, packed as 48-byte v5 records.

    Records may be tuples, dicts or attrs objects (see ``Template.rows``); values that do not fit
    raise ``RecordError``.
    """
    if len(records) > MAX_RECORDS:
        raise ExportError(f"a NetFlow v5 packet carries 1..{MAX_RECORDS} records, not {len(records)}")
    st = _batch(len(records))
    if V5_TEMPLATE.canonical(records):
        try:
            return st.pack(*chain.from_iterable(records))
        except struct.error:
            pass  # rows() names the record and field at fault
    return st.pack(*chain.from_iterable(V5_TEMPLATE.rows(records)))


def encode_v5(records: Sequence[Any], sys_uptime_ms: int, unix_secs: int, sequence: int, *,
              unix_nsecs: int = 0, engine_type: int = 0, engine_id: int = 0,
              sampling_interval: int = 0, sampling_mode: int = 0) -> bytes:
    """One NetFlow v5 packet holding ``records`` (at most 30, see :func:`pack_records`).

    ``sequence`` is the number of flows sent before this packet. ``sampling_interval`` (14 bits)
    and ``sampling_mode`` (2 bits) fill the header's sampling field.
    """
    body = pack_records(records)
    return v5_header(len(records), sys_uptime_ms, unix_secs, sequence, unix_nsecs=unix_nsecs,
                     engine_type=engine_type, engine_id=engine_id, sampling_interval=sampling_interval,
                     sampling_mode=sampling_mode) + body
