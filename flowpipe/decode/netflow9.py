"""NetFlow v9 (RFC 3954) wire format: the export header and the template flowsets.

Data flowsets are decoded by :mod:`flowpipe.decode.template_decoder` with the templates these
functions parse. v9 field types are all enterprise 0. RFC 3954 has no variable-length fields, but
vendors (H3C) send length 65535 with the IPFIX length prefix: the templates accept it (see
:func:`flowpipe.decode.templates.check`).
"""
from __future__ import annotations

import struct

from flowpipe.cache import bounded_put
from flowpipe.decode.base import unpack_header
from flowpipe.decode.templates import MessageHeader, TemplateRecord, new_header

HEADER = struct.Struct("!HHIIII")  # version, count, sysUptime ms, unix secs, sequence, source id
HEADER_LEN = HEADER.size
TEMPLATE_SET, OPTIONS_SET = 0, 1
_HH = struct.Struct("!HH")
_HHH = struct.Struct("!HHH")


def header(data: bytes) -> MessageHeader:
    _, _, uptime, secs, seq, source_id = unpack_header(data, HEADER, "NetFlow v9 datagram")
    return new_header((secs, uptime, seq, source_id, len(data)))


def is_reserved(set_id: int) -> bool:
    return 1 < set_id < 256


# Fields of templates as sent (their bytes) -> as a tuple: exporters resend the same templates every
# few datagrams, and reading one anew cost ~3 us of a template datagram's ~7.6 (the bench's repeat load).
_FIELDS: dict[bytes, tuple[tuple[int, int, int], ...]] = {}
MAX_FIELDS_CACHED = 4096


def _fields(data: bytes, off: int, n: int) -> tuple[tuple[int, int, int], ...]:
    raw = data[off:off + 4 * n]
    got = _FIELDS.get(raw)
    if got is None:
        got = bounded_put(_FIELDS, MAX_FIELDS_CACHED, raw,
                          tuple((0, t, ln) for t, ln in struct.iter_unpack("!HH", raw)))
    return got


def templates(data: bytes, off: int, end: int, skipped: list[str]) -> list[TemplateRecord]:
    """Template records of a template flowset (id 0) in ``data[off:end]``."""
    out: list[TemplateRecord] = []
    while end - off >= 4:
        tid, count = _HH.unpack_from(data, off)
        if tid == 0 and not any(data[off:end]):
            break  # padding
        off += 4
        if count == 0:
            skipped.append("bad_template")
            continue
        if off + 4 * count > end:
            skipped.append("bad_template")
            break
        out.append(TemplateRecord(tid, _fields(data, off, count), 0, False))
        off += 4 * count
    return out


def options_templates(data: bytes, off: int, end: int, skipped: list[str]) -> list[TemplateRecord]:
    """Options template records of an options template flowset (id 1); scope fields come first."""
    out: list[TemplateRecord] = []
    while end - off >= 6:
        tid, scope_len, opt_len = _HHH.unpack_from(data, off)
        if tid == 0 and not any(data[off:end]):
            break  # padding
        off += 6
        if scope_len % 4 or opt_len % 4 or off + scope_len + opt_len > end or not scope_len + opt_len:
            skipped.append("bad_template")
            break
        n = (scope_len + opt_len) // 4
        out.append(TemplateRecord(tid, _fields(data, off, n), scope_len // 4, True))
        off += scope_len + opt_len
    return out
