"""NetFlow v5: a fixed 24-byte header and 48-byte records, decoded with one precompiled struct."""
from __future__ import annotations

import struct
from typing import Any

import numpy as np

from flowpipe import flow
from flowpipe.decode.base import Decoded, DecodeError, SequenceObs, Source
from flowpipe.decode.columns import Chunk, VectorPlan
from flowpipe.flow import ETHER_IPV4, builder

HEADER = struct.Struct("!HHIIIIBBH")
RECORD = struct.Struct("!4s4s4sHHIIIIHHxBBBHHBBxx")
assert HEADER.size == 24 and RECORD.size == 48


def decode(data: bytes, src: Source, columnar: bool = False) -> Decoded:
    """Decode one NetFlow v5 datagram; DecodeError when its header or length is wrong.

    ``columnar``: the records go into ``Decoded.chunks`` undecoded (see :mod:`flowpipe.decode.columns`).
    """
    if len(data) < HEADER.size:
        raise DecodeError("short", f"{len(data)} bytes is shorter than the 24-byte v5 header")
    version, count, uptime, secs, _nsecs, sequence, eng_type, eng_id, sampling = HEADER.unpack_from(data)
    if version != 5:
        raise DecodeError("bad_version", f"version {version}, not 5")
    if count == 0:
        raise DecodeError("bad_count", "header count is 0")
    need = HEADER.size + count * RECORD.size
    if len(data) < need:
        raise DecodeError("bad_length", f"count {count} needs {need} bytes, datagram has {len(data)}")
    skipped = ["trailing_bytes"] if len(data) > need else []
    rate = sampling & 0x3FFF
    exporter, ns = src.exporter, src.namespace
    body = data[HEADER.size:need]
    out = Decoded("netflow5", exporter, [], SequenceObs((eng_type << 8) | eng_id, sequence, count), skipped=skipped)
    if columnar:
        out.chunks.append(Chunk(RECORDS, body, count, exporter, ns, rate, {}, secs, uptime, None))
    else:
        out.flows = records(body, exporter, ns, rate, {}, secs, uptime, None)
    return out


def records(body: bytes, exporter: str, ns: str, rate: int, _samplers: object, secs: int, uptime: int,
            _boot_ms: int | None) -> list[tuple]:
    """The flow tuples of whole v5 records (the record decoder's signature, see RecordDecoder).

    Times follow the Datadog Agent (goflow2): ``unix_secs - (sys_uptime - first) / 1000`` with the
    millisecond difference divided toward zero; ``unix_nsecs`` is ignored."""
    wrap = 1 << 32
    flows: list[tuple] = []
    append = flows.append
    for (sa, da, nh, i_if, o_if, pkts, octs, first, last, sp, dp, flags, proto, tos, _sas, _das, smask,
         dmask) in RECORD.iter_unpack(body):
        if first > uptime + 0x7FFFFFFF:  # switched before an uptime wrap
            first -= wrap
        if last > uptime + 0x7FFFFFFF:
            last -= wrap
        d_first, d_last = uptime - first, uptime - last
        start = secs - (d_first // 1000 if d_first >= 0 else -(-d_first // 1000))
        end = secs - (d_last // 1000 if d_last >= 0 else -(-d_last // 1000))
        append(_flow(exporter, ns, rate, start, end, octs, pkts, proto, sa, da, sp, dp, smask, dmask, i_if, o_if,
                     flags, nh, tos))
    return flows


# A record's flow tuple: these fields from the record, the rest constant (MACs 0, no additional fields).
_flow = builder("exporter", "namespace", "sampling_rate", "start", "end", "bytes", "packets", "ip_protocol", "src_ip",
                "dst_ip", "src_port", "dst_port", "src_mask", "dst_mask", "in_if", "out_if", "tcp_flags", "next_hop",
                "tos", type="netflow5", ether_type=ETHER_IPV4)


class _Records:
    """v5 records as a record decoder with a columnar plan (the ``Chunk.dec`` of v5 chunks)."""

    __slots__ = ("plan", "size")

    def __init__(self) -> None:
        self.size = RECORD.size
        fields = {flow.SRC_IP: ("V4", 0), flow.DST_IP: ("V4", 4), flow.IN_IF: (">u2", 12),
                  flow.PACKETS: (">u4", 16), flow.BYTES: (">u4", 20), flow.START: (">u4", 24),
                  flow.END: (">u4", 28), flow.SRC_PORT: (">u2", 32), flow.DST_PORT: (">u2", 34),
                  flow.TCP_FLAGS: ("u1", 37), flow.IP_PROTOCOL: ("u1", 38), flow.TOS: ("u1", 39)}
        names = {slot: f"s{slot}" for slot in fields}
        kept = {flow.SRC_MASK: ("u1", 44), flow.DST_MASK: ("u1", 45), flow.OUT_IF: (">u2", 14),
                flow.NEXT_HOP: ("V4", 8)}
        dtype = np.dtype({"names": list(names.values()) + [f"k{slot}" for slot in kept],
                          "formats": [f for f, _ in fields.values()] + [f for f, _ in kept.values()],
                          "offsets": [o for _, o in fields.values()] + [o for _, o in kept.values()],
                          "itemsize": RECORD.size})
        how: dict[int, tuple[str, Any]] = {flow.DIRECTION: ("const", 0), flow.ETHER_TYPE: ("const", ETHER_IPV4),
                                           flow.SRC_MAC: ("const", 0), flow.DST_MAC: ("const", 0),
                                           **{slot: ("field", f"k{slot}") for slot in kept}}
        self.plan = VectorPlan(dtype, names, {flow.START: "v5", flow.END: "v5"}, how, "netflow5")

    decode = staticmethod(records)


RECORDS = _Records()
