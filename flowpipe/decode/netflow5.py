"""NetFlow v5: a fixed 24-byte header and 48-byte records, decoded with one precompiled struct."""
from __future__ import annotations

import struct

from flowpipe.decode.base import Decoded, DecodeError, SequenceObs, Source
from flowpipe.flow import ETHER_IPV4

HEADER = struct.Struct("!HHIIIIBBH")
RECORD = struct.Struct("!4s4s4sHHIIIIHHxBBBHHBBxx")
assert HEADER.size == 24 and RECORD.size == 48


def decode(data: bytes, src: Source) -> Decoded:
    """Decode one NetFlow v5 datagram; DecodeError when its header or length is wrong."""
    if len(data) < HEADER.size:
        raise DecodeError("short", f"{len(data)} bytes is shorter than the 24-byte v5 header")
    version, count, uptime, secs, nsecs, sequence, eng_type, eng_id, sampling = HEADER.unpack_from(data)
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
    # Switched times are sysUptime milliseconds: unix time of uptime 0, in ms.
    boot_ms = secs * 1000 + nsecs // 1_000_000 - uptime
    wrap = 1 << 32
    flows: list[tuple] = []
    append = flows.append
    for (sa, da, nh, i_if, o_if, pkts, octs, first, last, sp, dp, flags, proto, tos, _sas, _das, smask,
         dmask) in RECORD.iter_unpack(data[HEADER.size:need]):
        if first > uptime + 0x7FFFFFFF:  # switched before an uptime wrap
            first -= wrap
        if last > uptime + 0x7FFFFFFF:
            last -= wrap
        append(("netflow5", exporter, ns, rate, 0, (boot_ms + first) // 1000, (boot_ms + last) // 1000,
                octs, pkts, ETHER_IPV4, proto, sa, da, sp, dp, 0, 0, smask, dmask, i_if, o_if, flags, nh,
                tos, None))
    return Decoded("netflow5", exporter, flows, SequenceObs((eng_type << 8) | eng_id, sequence, count),
                   skipped=skipped)
