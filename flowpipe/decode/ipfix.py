"""IPFIX (RFC 7011) wire format: the message header and template / options template sets.

Data sets are decoded by :mod:`flowpipe.decode.template_decoder` with the templates these
functions parse. A template record with field count 0 is a withdrawal (returned with no fields).
"""
from __future__ import annotations

import struct

from flowpipe.decode.base import DecodeError, unpack_header
from flowpipe.decode.templates import MessageHeader, TemplateRecord, new_header

HEADER = struct.Struct("!HHIII")  # version, length, export time, sequence, observation domain
HEADER_LEN = HEADER.size
TEMPLATE_SET, OPTIONS_SET = 2, 3
_HH = struct.Struct("!HH")
_I = struct.Struct("!I")


def header(data: bytes) -> MessageHeader:
    _, length, secs, seq, domain = unpack_header(data, HEADER, "IPFIX message")
    if length < HEADER_LEN or length > len(data):
        raise DecodeError("bad_length", f"message length {length}, datagram {len(data)} bytes")
    return new_header((secs, 0, seq, domain, length))


def is_reserved(set_id: int) -> bool:
    return set_id < 256 and set_id not in (TEMPLATE_SET, OPTIONS_SET)


def templates(data: bytes, off: int, end: int, options: bool, skipped: list[str]) -> list[TemplateRecord]:
    """(Options) template records of a set in ``data[off:end]``; field count 0 = withdrawal."""
    out: list[TemplateRecord] = []
    head = 6 if options else 4
    while end - off >= 4:
        tid, count = _HH.unpack_from(data, off)
        if count == 0:
            if tid == 0 and not any(data[off:end]):
                break  # padding
            out.append(TemplateRecord(tid, (), 0, options))
            off += 4
            continue
        if end - off < head:
            skipped.append("bad_template")
            break
        scope = _HH.unpack_from(data, off + 2)[1] if options else 0
        off += head
        fields = []
        for _ in range(count):
            if off + 4 > end:
                skipped.append("bad_template")
                return out
            eid, ln = _HH.unpack_from(data, off)
            off += 4
            pen = 0
            if eid & 0x8000:
                if off + 4 > end:
                    skipped.append("bad_template")
                    return out
                pen = _I.unpack_from(data, off)[0]
                off += 4
                eid &= 0x7FFF
            fields.append((pen, eid, ln))
        if options and scope == 0:
            skipped.append("bad_template")  # RFC 7011 §3.4.2.2: the scope field count is never 0
            continue
        out.append(TemplateRecord(tid, tuple(fields), scope, options))
    return out
